"""Accepting jobs: the one door through which every request enters.

The server's rules are applied first, then the job row is written, with the usage limits decided
inside the same transaction; only then does the scheduler hear about it. Whatever happens
afterwards, the store already knows the job exists. ``quote`` is the read-only look before that:
the model it runs on, its price, and whether its requester should confirm it first.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

from services.jobs.models import CancelResult, Job, JobRequest
from services.policy.guild_policy import GuildPolicy, default_policy
from services.policy.limits import (
    DAY_S,
    Refusal,
    Refused,
    Requester,
    check_usage,
    estimate_of,
    next_free_slot,
    screen,
)
from services.policy.model_choice import choose_model
from services.policy.server_rules import ServerRules
from services.store.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Accepted:
    job: Job
    position: int | None  # place in line, or None when it starts at once


@dataclass(frozen=True, slots=True)
class Quote:
    """What a request would cost before anything is written, and whether its requester should confirm it first:
    above the server's confirm threshold, or more than half of what is left of its daily budget."""

    request: JobRequest  # with the server's defaults and its model filled in
    ticks: int
    confirm: bool
    threshold_ticks: int | None  # the server's confirm threshold
    budget_ticks: int | None  # the server's daily budget, and what is left of it before this video
    budget_left_ticks: int | None
    videos_left: int | None  # the member's videos left in their window, before this one
    window_s: float


@dataclass(frozen=True, slots=True)
class Quota:
    """What is left for one member in one server, for ``/quota``."""

    policy: GuildPolicy
    staff: bool
    banned: bool
    videos_used: int
    videos_limit: int | None
    next_video_at: float | None  # when a used slot frees up (None: nothing used, no limit, or when one finishes)
    active: int
    active_limit: int | None
    server_videos_used: int
    server_spend_ticks: int


class JobRunner(Protocol):
    """What accepting needs of whoever runs the jobs (``services/scheduler/loop.py``'s ``Scheduler``)."""

    def enqueue(self, job: Job) -> None: ...

    def queue_position(self, job_id: int) -> int | None: ...

    async def cancel(self, job_id: int) -> CancelResult | None: ...


class JobService:
    def __init__(self, store: Store, scheduler: JobRunner, rules: ServerRules | None = None) -> None:
        self.store = store
        self.scheduler = scheduler
        self.rules = rules or ServerRules(store)

    async def accept(self, request: JobRequest, requester: Requester | None = None) -> Accepted:
        """Check the server's rules and limits, store the job (status queued), and put it in line.

        Raises ``Refused`` when a rule or limit says no; nothing is stored then.
        """
        result = await self._admit(request, requester or Requester())
        if isinstance(result, Refusal):
            log.info("Refused a request from user %s: %s", request.origin.user_id, result.limit)
            raise Refused(result)
        job = result
        log.info("Job %d accepted: %s from user %s", job.id, job.mode, job.origin.user_id)
        self.scheduler.enqueue(job)
        return Accepted(job=job, position=self.scheduler.queue_position(job.id))

    async def screen(self, request: JobRequest, requester: Requester | None = None) -> None:
        """An early, read-only look at the same rules, to refuse before downloading an attachment."""
        if not _limited(request):
            return
        assert request.origin.guild_id is not None
        requester = requester or Requester()
        policy = await self.rules.policy(request.origin.guild_id)
        checked = await self._screened(policy, request, requester)
        refusal = await check_usage(policy, requester, checked, self.store.usage, time.time())
        if refusal is not None:
            raise Refused(refusal)

    async def quote(self, request: JobRequest, requester: Requester | None = None) -> Quote:
        """The request's price and whether to ask first; a read-only look (raises ``Refused`` like ``accept``)."""
        requester = requester or Requester()
        if not _limited(request):  # the admin's own terminal: never asked
            bot_wide = default_policy(self.rules.defaults)
            checked = choose_model(bot_wide, request)
            return Quote(checked, estimate_of(bot_wide, checked), False, None, None, None, None, 0.0)
        assert request.origin.guild_id is not None and request.origin.user_id is not None
        policy = await self.rules.policy(request.origin.guild_id)
        checked = await self._screened(policy, request, requester)
        now = time.time()
        refusal = await check_usage(policy, requester, checked, self.store.usage, now)
        if refusal is not None:
            raise Refused(refusal)
        ticks = estimate_of(policy, checked)
        budget, left = policy.server_ticks_per_day, None
        if budget is not None:
            left = budget - await self.store.usage.spend_total(request.origin.guild_id, now - DAY_S, policy)
        threshold = policy.confirm_ticks
        # No threshold (0 in /videoadmin or CONFIRM_ABOVE_USD) turns the whole Confirm step off.
        confirm = threshold is not None and (ticks > threshold or (left is not None and ticks > left / 2))
        limit = policy.staff_videos if requester.is_staff(policy) else policy.user_videos
        videos_left = None
        if limit is not None:
            used = await self.store.usage.counted_count(
                request.origin.guild_id, request.origin.user_id, now - policy.user_window_s
            )
            videos_left = max(0, limit - used)
        return Quote(checked, ticks, confirm, threshold, budget, left, videos_left, policy.user_window_s)

    async def _admit(self, request: JobRequest, requester: Requester) -> Job | Refusal:
        if not _limited(request):  # the admin's own terminal: the bot's models, no server's rules
            return await self.store.jobs.create(choose_model(default_policy(self.rules.defaults), request))
        assert request.origin.guild_id is not None
        policy = await self.rules.policy(request.origin.guild_id)
        checked = await self._screened(policy, request, requester)

        async def refuse(now: float) -> Refusal | None:
            return await check_usage(policy, requester, checked, self.store.usage, now)

        return await self.store.jobs.create_unless(checked, refuse)

    async def _screened(self, policy: GuildPolicy, request: JobRequest, requester: Requester) -> JobRequest:
        origin = request.origin
        assert origin.guild_id is not None and origin.user_id is not None
        banned = await self.rules.is_banned(origin.guild_id, origin.user_id)
        screened = screen(policy, request, banned=banned, parent_channel_id=requester.channel_parent_id)
        return choose_model(policy, screened, request)

    async def quota(self, guild_id: int, user_id: int, requester: Requester | None = None) -> Quota:
        requester = requester or Requester()
        policy = await self.rules.policy(guild_id)
        staff = requester.is_staff(policy)
        videos_limit = policy.staff_videos if staff else policy.user_videos
        now = time.time()
        window = policy.user_window_s
        used = await self.store.usage.counted_uses(guild_id, user_id, now - window)
        next_at = None
        if used and videos_limit is not None:  # with no limit, nothing needs to free up
            # When the next video is possible, or (with some left) when the first one stops counting; None when
            # that waits on a video in the making finishing at xAI.
            next_at = next_free_slot(used, min(videos_limit, len(used)), window, now)
        server_videos = await self.store.usage.counted_count(guild_id, None, now - DAY_S)
        spend = await self.store.usage.spend_total(guild_id, now - DAY_S, policy)
        return Quota(
            policy=policy,
            staff=staff,
            banned=await self.rules.is_banned(guild_id, user_id),
            videos_used=len(used),
            videos_limit=videos_limit,
            next_video_at=next_at,
            active=await self.store.usage.active_count(guild_id, user_id),
            active_limit=policy.staff_active_jobs if staff else policy.user_active_jobs,
            server_videos_used=server_videos,
            server_spend_ticks=spend,
        )

    async def cancel(self, job_id: int) -> CancelResult | None:
        """Stop a job: whether its request had reached xAI, or None when it had already finished."""
        return await self.scheduler.cancel(job_id)

    async def get(self, job_id: int) -> Job | None:
        return await self.store.jobs.get(job_id)


def _limited(request: JobRequest) -> bool:
    """Server rules apply to requests from a server; the admin's own terminal jobs are theirs to make."""
    origin = request.origin
    return origin.kind == "discord" and origin.guild_id is not None and origin.user_id is not None
