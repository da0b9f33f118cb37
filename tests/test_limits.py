"""The limit rules on their own, and the accepting transaction under racing requests (real SQLite files)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.jobs.models import JobRequest, Mode, Origin, Use, VideoOptions
from services.policy.guild_policy import GuildPolicy, PolicyError, apply_overrides, validate
from services.policy.limits import (
    Limit,
    Refusal,
    Refused,
    Requester,
    check_usage,
    next_affordable,
    next_free_slot,
    screen,
)
from services.policy.usage import job_cost
from services.store.store import Store
from services.xai.catalog import usd_to_ticks


def _request(user: int = 7, duration: int | None = None, mode: Mode = Mode.TEXT, channel: int = 2) -> JobRequest:
    return JobRequest(
        mode=mode,
        prompt="a fox",
        options=VideoOptions(duration=duration),
        origin=Origin(guild_id=1, channel_id=channel, user_id=user),
    )


NOW = 1000.0


def _done(*moments: float) -> list[Use]:
    return [Use(moment, in_flight=False) for moment in moments]


def test_next_free_slot_is_when_enough_old_videos_leave_the_window() -> None:
    assert next_free_slot(_done(100.0, 200.0, 300.0), limit=3, window_s=3600, now=NOW) == 3700.0
    assert next_free_slot(_done(100.0, 200.0, 300.0, 400.0), limit=3, window_s=3600, now=NOW) == 3800.0


def test_a_slot_held_by_a_video_still_in_the_making_names_no_moment_in_the_past() -> None:
    """Sent two hours ago and still generating (an outage): it frees the slot when it finishes, not 'an hour ago'."""
    old_in_flight = Use(NOW - 7200, in_flight=True)
    assert next_free_slot([old_in_flight, *_done(NOW - 600)], limit=2, window_s=3600, now=NOW) is None
    # Two must leave: the one in the making (any moment), then the finished one, whose moment is known.
    assert next_free_slot([old_in_flight, *_done(NOW - 600)], limit=1, window_s=3600, now=NOW) == NOW + 3000
    # Recent and still in the making: it counts until its window passes (it will have finished by then).
    assert next_free_slot([Use(NOW - 60, in_flight=True)], limit=1, window_s=3600, now=NOW) == NOW + 3540
    # Waiting to be sent: it counts a whole window from when it goes, at the soonest now.
    assert next_free_slot([Use(None, in_flight=True)], limit=1, window_s=3600, now=NOW) == NOW + 3600


def test_next_affordable_spend() -> None:
    uses = [Use(10.0, False, 50), Use(20.0, False, 30), Use(30.0, False, 10)]  # in ticks (small ones)
    assert next_affordable(uses, cost=40, budget=100, window_s=100, now=50) == 110.0  # once the 50 leaves
    assert next_affordable(uses, cost=70, budget=100, window_s=100, now=50) == 120.0
    assert next_affordable(uses, cost=150, budget=100, window_s=100, now=50) == float("inf")
    stuck = [Use(-500.0, True, 50), *uses[1:]]  # the 50 is a video still in the making, sent long ago
    assert next_affordable(stuck, cost=40, budget=100, window_s=100, now=50) is None


def test_staff_role_and_manage_server() -> None:
    policy = GuildPolicy(staff_role_id=55)
    assert Requester(manages_server=True).is_staff(policy)
    assert Requester(role_ids=frozenset({55})).is_staff(policy)
    assert not Requester(role_ids=frozenset({56})).is_staff(policy)


def test_screen_fills_in_defaults_and_keeps_to_the_longest_duration() -> None:
    policy = GuildPolicy(default_duration=5, default_resolution="720p", max_duration=6)
    screened = screen(policy, _request(), banned=False, parent_channel_id=None)
    assert (screened.options.duration, screened.options.resolution) == (5, "720p")
    capped = screen(GuildPolicy(max_duration=4), _request(), banned=False, parent_channel_id=None)
    assert capped.options.duration == 4  # xAI's own default of 8 s would break the server's maximum
    with pytest.raises(Refused) as refused:
        screen(policy, _request(duration=9), banned=False, parent_channel_id=None)
    assert refused.value.refusal.limit is Limit.DURATION


def test_a_thread_counts_as_its_channel() -> None:
    policy = GuildPolicy(channel_ids=frozenset({2}))
    screen(policy, _request(channel=99), banned=False, parent_channel_id=2)
    with pytest.raises(Refused):
        screen(policy, _request(channel=99), banned=False, parent_channel_id=3)


def test_policy_validation_names_the_problem() -> None:
    with pytest.raises(PolicyError, match="at least one kind"):
        validate(GuildPolicy(allowed_modes=frozenset()))
    with pytest.raises(PolicyError, match="default duration"):
        validate(GuildPolicy(default_duration=10, max_duration=5))
    loaded = apply_overrides(GuildPolicy(), {"channel_ids": [3, 4], "allowed_modes": ["text"], "unknown": 1})
    assert loaded.channel_ids == {3, 4} and loaded.allowed_modes == {Mode.TEXT}


async def _accept_all(store: Store, policy: GuildPolicy, requests: list[JobRequest]) -> list[object]:
    async def one(request: JobRequest) -> object:
        async def refuse(now: float) -> Refusal | None:
            await asyncio.sleep(0)  # let the others run between the read and the write, if they could
            return await check_usage(policy, Requester(), request, store.usage, now)

        return await store.jobs.create_unless(request, refuse)

    return await asyncio.gather(*(one(request) for request in requests))


async def test_twenty_racing_requests_cannot_pass_a_limit_of_five(tmp_path: Path, store_url: str | None) -> None:
    async with await Store.open(tmp_path / "jobs.sqlite3", url=store_url) as store:
        results = await _accept_all(store, GuildPolicy(user_videos=5, user_active_jobs=None), [_request()] * 20)
        assert sum(not isinstance(result, Refusal) for result in results) == 5
        assert len(await store.usage.counted_uses(1, 7, 0)) == 5


async def test_two_processes_racing_share_the_limit(tmp_path: Path, store_url: str | None) -> None:
    """Two connections to one store (as two bot processes would have): SQLite's write lock orders them, and
    PostgreSQL's advisory lock taken by every store transaction."""
    path = tmp_path / "jobs.sqlite3"
    policy = GuildPolicy(user_videos=None, user_active_jobs=None, server_videos_per_day=6)
    async with await Store.open(path, url=store_url) as first, await Store.open(path, url=store_url) as second:
        results = await asyncio.gather(
            _accept_all(first, policy, [_request(user=n) for n in range(10)]),
            _accept_all(second, policy, [_request(user=100 + n) for n in range(10)]),
        )
        accepted = [r for batch in results for r in batch if not isinstance(r, Refusal)]
        assert len(accepted) == 6
        assert len(await first.usage.counted_uses(1, None, 0)) == 6


async def test_the_spend_total_adds_up_the_same_as_the_entries(tmp_path: Path, store_url: str | None) -> None:
    """SQLite's sum (the fast path) and the per-job figures (used to tell when) follow one rule."""
    policy = GuildPolicy()  # jobs with no model recorded are priced as the classic model: $0.05 / $0.07 a second
    async with await Store.open(tmp_path / "jobs.sqlite3", url=store_url) as store:
        specs = [  # charged: the submit may have reached xAI
            (Mode.TEXT, 5, "480p", "delivered", 3_000_000_000, True),
            (Mode.TEXT, None, "720p", "queued", None, False),
            (Mode.EDIT, None, None, "running", None, True),
            (Mode.IMAGE, 10, "480p", "failed", None, False),  # refused before sending: handed back
            (Mode.TEXT, 4, "480p", "failed", 1_000_000_000, True),
            (Mode.TEXT, 4, "480p", "moderated", None, True),
            (Mode.TEXT, 6, "480p", "cancelled", None, True),  # cancelled while generating: still counts
            (Mode.TEXT, 6, "480p", "cancelled", None, False),  # cancelled while waiting: handed back
        ]
        for mode, duration, resolution, status, ticks, charged in specs:
            request = JobRequest(mode, "x", VideoOptions(duration=duration, resolution=resolution), Origin(1, 2, 3))
            job = await store.jobs.create(request)
            await store.database.execute(
                "UPDATE jobs SET status = ?, cost_usd_ticks = ?, charged = ? WHERE id = ?",
                (status, ticks, charged, job.id),
            )
        uses = await store.usage.spend_uses(1, 0, policy)
        total = await store.usage.spend_total(1, 0, policy)
        jobs = await store.usage.in_guild(1)
    # $0.30 reported + 8 s at 720p + 9 s edit at 720p (its resolution is its input's) + $0.10 reported + 4 s at
    # 480p + 6 s at 480p
    expected = usd_to_ticks(0.30 + 0.56 + 0.63 + 0.10 + 0.20 + 0.30)
    assert total == sum(use.ticks for use in uses) == expected  # in whole ticks: sums never drift
    assert sum(job_cost(job, policy)[0] for job in jobs) == expected  # /usage adds up the same
