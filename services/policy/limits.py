"""Whether a member may start a video now, and if not, which rule says no and until when.

Two kinds of rules: the server's standing rules (bans, channels, modes, durations), which need no
history, and the usage limits (per member per window, active jobs, per server per day, spend per
day), which read recent jobs. The usage check runs inside the store's write transaction that
inserts the job, so two quick requests cannot both slip past a limit.

Which jobs count (``models.COUNTED``, the same rule for the limits, /quota and /usage): a job counts
while it waits or runs, and for good once its submit may have reached xAI, whatever its ending (cancelled
while generating, timed out, moderated, failed, not delivered): xAI may bill it. Only a job that provably
started nothing at xAI is handed back. Spend counts what xAI reported, or the estimate until it does. In a
rolling window a job in the making counts now, however old it is; a finished one from when it was sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum, auto
from typing import Protocol

from services.jobs.models import MAX_DURATION_S, JobRequest, Mode, Use, ticks_to_usd
from services.policy.guild_policy import GuildPolicy

DAY_S = 24 * 3600.0
MODE_WORDS = {
    Mode.TEXT: "text-to-video",
    Mode.IMAGE: "animating images",
    Mode.EDIT: "editing videos",
    Mode.EXTEND: "extending videos",
}


@dataclass(frozen=True, slots=True)
class Requester:
    """What the Discord face knows about the person asking, beyond their id."""

    manages_server: bool = False
    role_ids: frozenset[int] = frozenset()
    channel_parent_id: int | None = None  # in a thread: its channel, so allowing a channel allows its threads

    def is_staff(self, policy: GuildPolicy) -> bool:
        return self.manages_server or (policy.staff_role_id is not None and policy.staff_role_id in self.role_ids)


class Limit(StrEnum):
    """Which rule refused a request (its value, the lower-case name, is what the logs and the bench show)."""

    BANNED = auto()  # a moderator blocked the member
    CHANNEL = auto()  # not one of the server's video channels
    MODE = auto()  # the server turned this kind of video off
    DURATION = auto()  # longer than the server allows
    MODEL = auto()  # a model this server does not allow, or one that cannot make what was asked
    USER_VIDEOS = auto()  # the member's videos per window
    USER_ACTIVE = auto()  # the member's videos in the making at once
    SERVER_VIDEOS = auto()  # the server's videos per day
    SERVER_SPEND = auto()  # the server's dollars per day


@dataclass(frozen=True, slots=True)
class Refusal:
    """Which rule said no, in words, and the moment the request would be accepted (None: not by waiting)."""

    limit: Limit
    reason: str
    retry_at: float | None = None


class Refused(Exception):
    """Raised by ``JobService.accept``; the Discord face shows ``refusal`` to the person."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal


class RecentUse(Protocol):
    """The history the usage limits read (``Store.usage``, services/store/usage.py, implements it)."""

    async def counted_count(self, guild_id: int, user_id: int | None, since: float) -> int: ...

    async def counted_uses(self, guild_id: int, user_id: int | None, since: float) -> list[Use]: ...

    async def spend_total(self, guild_id: int, since: float, policy: GuildPolicy) -> int: ...

    async def active_count(self, guild_id: int, user_id: int) -> int: ...

    async def spend_uses(self, guild_id: int, since: float, policy: GuildPolicy) -> list[Use]: ...


def screen(policy: GuildPolicy, request: JobRequest, *, banned: bool, parent_channel_id: int | None) -> JobRequest:
    """Apply the server's standing rules: refuse what is not allowed, fill in the server's defaults."""
    origin = request.origin
    if banned:
        raise Refused(Refusal(Limit.BANNED, "A moderator has blocked you from making videos in this server."))
    if not policy.allows_channel(origin.channel_id, parent_channel_id):
        where = ", ".join(f"<#{c}>" for c in sorted(policy.channel_ids))
        raise Refused(Refusal(Limit.CHANNEL, f"Videos can only be made in {where} in this server. Try there."))
    if request.mode not in policy.allowed_modes:
        allowed = " and ".join(MODE_WORDS[m] for m in Mode if m in policy.allowed_modes)
        raise Refused(
            Refusal(Limit.MODE, f"This server has turned off {MODE_WORDS[request.mode]}; it allows {allowed}.")
        )
    if request.mode is Mode.EDIT:
        return request  # edits take their length from the input video and carry no options
    options = request.options
    duration = options.duration
    if duration is not None and duration > policy.max_duration:
        raise Refused(
            Refusal(
                Limit.DURATION,
                f"The longest video allowed here is {policy.max_duration} s; ask for {policy.max_duration} s or less.",
            )
        )
    if request.mode is Mode.EXTEND:
        return request  # the seconds it adds were asked for, and it keeps its clip's resolution: no defaults
    if duration is None:
        duration = policy.default_duration
        if duration is None and policy.max_duration < MAX_DURATION_S:
            duration = min(8, policy.max_duration)  # xAI's default of 8 s could break the server's maximum
    resolution = options.resolution or policy.default_resolution
    return replace(request, options=replace(options, duration=duration, resolution=resolution))


async def check_usage(
    policy: GuildPolicy, requester: Requester, request: JobRequest, history: RecentUse, now: float
) -> Refusal | None:
    """The usage limits, against the history as it is inside the accepting transaction."""
    guild_id, user_id = request.origin.guild_id, request.origin.user_id
    if guild_id is None or user_id is None:
        return None
    staff = requester.is_staff(policy)
    per_window = policy.staff_videos if staff else policy.user_videos
    active_limit = policy.staff_active_jobs if staff else policy.user_active_jobs

    if active_limit is not None and await history.active_count(guild_id, user_id) >= active_limit:
        plural = "video" if active_limit == 1 else "videos"
        return Refusal(
            Limit.USER_ACTIVE,
            f"You already have {active_limit} {plural} in the making (the most allowed at once here). "
            "You can start another as soon as one of them finishes.",
        )
    if per_window is not None:
        window = policy.user_window_s
        uses = await history.counted_uses(guild_id, user_id, now - window)
        if len(uses) >= per_window:
            frees_at = next_free_slot(uses, per_window, window, now)
            return Refusal(
                Limit.USER_VIDEOS,
                f"You've made {len(uses)} videos in the last {span_words(window)}; the limit here is {per_window}."
                + (YOURS_FINISHING if frees_at is None else ""),
                frees_at,
            )
    # The server-wide checks read many more rows: count first, and fetch the jobs only to refuse.
    if policy.server_videos_per_day is not None and (
        await history.counted_count(guild_id, None, now - DAY_S) >= policy.server_videos_per_day
    ):
        uses = await history.counted_uses(guild_id, None, now - DAY_S)
        frees_at = next_free_slot(uses, policy.server_videos_per_day, DAY_S, now)
        return Refusal(
            Limit.SERVER_VIDEOS,
            f"This server has made {len(uses)} videos in the last 24 hours, its daily limit."
            + (SERVERS_FINISHING if frees_at is None else ""),
            frees_at,
        )
    budget = policy.server_ticks_per_day
    if budget is not None:
        cost = estimate_of(policy, request)
        spent = await history.spend_total(guild_id, now - DAY_S, policy)
        if spent + cost > budget:
            if cost > budget:
                return Refusal(
                    Limit.SERVER_SPEND,
                    f"This video would cost about {usd(cost)}, more than this server's daily budget of "
                    f"{usd(budget)}. Ask for a shorter, lower-resolution or cheaper-model video.",
                )
            uses = await history.spend_uses(guild_id, now - DAY_S, policy)
            affordable_at = next_affordable(uses, cost, budget, DAY_S, now)
            return Refusal(
                Limit.SERVER_SPEND,
                f"This server has spent {usd(spent)} of its {usd(budget)} daily budget, and this "
                f"video would cost about {usd(cost)}." + (SERVERS_FINISHING if affordable_at is None else ""),
                affordable_at,
            )
    return None


def estimate_of(policy: GuildPolicy, request: JobRequest) -> int:
    """A request's price in ticks before xAI says: its model's rate (services/xai/catalog.py)."""
    options = request.options
    return policy.estimate_ticks(request.model, request.mode, options.duration, options.resolution)


def usd(ticks: int) -> str:
    """Ticks as dollars to read: cents, or tenths of a cent when there are some (an image fee is $0.002)."""
    dollars = ticks_to_usd(ticks)
    return f"${dollars:.2f}" if round(dollars, 2) == round(dollars, 3) else f"${dollars:.3f}"


# When the slot that would free up belongs to a video still in the making whose window has already passed (it
# waited through an outage, say), no moment can be named: it stops counting when xAI finishes it.
YOURS_FINISHING = " You can start another as soon as one of your videos in the making finishes."
SERVERS_FINISHING = " Another is possible as soon as one of the videos in the making here finishes."


def leaves_window_at(use: Use, window_s: float, now: float) -> float | None:
    """When a counted job stops counting in a window; None when that waits on xAI finishing it.

    A finished job leaves ``window_s`` after it was charged. One still in the making counts until it is over
    and then from when it was charged: it is taken to finish before its window passes, and when its window
    has passed already, only its finishing frees it. One not sent yet counts a whole window from when it is.
    """
    if use.charged_at is None:
        return now + window_s
    leaves = use.charged_at + window_s
    if use.in_flight and leaves <= now:
        return None
    return leaves


def _leaving_order(uses: Sequence[Use], window_s: float, now: float) -> list[tuple[float | None, Use]]:
    """The counted jobs in the order they leave the window: those waiting on xAI first (they may finish any
    moment), then by the moment they leave."""
    moments = [(leaves_window_at(use, window_s, now), use) for use in uses]
    return sorted(moments, key=lambda item: (item[0] is not None, item[0] or 0.0))


def next_free_slot(uses: Sequence[Use], limit: int, window_s: float, now: float) -> float | None:
    """When enough of ``uses`` leave the window for one more to fit under ``limit``; None when that waits on a
    video in the making finishing (never a moment in the past)."""
    order = _leaving_order(uses, window_s, now)
    moment, _ = order[max(0, len(uses) - limit)]
    return moment


def next_affordable(uses: Sequence[Use], cost: int, budget: int, window_s: float, now: float) -> float | None:
    """For spend that does not fit now: when enough of it leaves the window for ``cost`` to fit (``inf`` when it
    never will), or None when that waits on a video in the making finishing."""
    if cost > budget:
        return float("inf")
    spent = sum(use.ticks for use in uses)
    for moment, use in _leaving_order(uses, window_s, now):
        spent -= use.ticks
        if spent + cost <= budget:
            return moment
    return float("inf")  # pragma: no cover - the loop always ends with spent == 0


def span_words(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes % 1440 == 0:
        days = minutes // 1440
        return "day" if days == 1 else f"{days} days"
    if minutes % 60 == 0:
        hours = minutes // 60
        return "hour" if hours == 1 else f"{hours} hours"
    return "minute" if minutes == 1 else f"{minutes} minutes"
