"""Admission: from the fair queue to a concurrent slot, and through the submit gate to xAI.

Every admitted job has a ``SubmitGate``: a Cancel stops it for free until the request goes on the wire, and
its hooks write ``charged`` right before each attempt is sent (and clear it when xAI provably turned it away),
so after a crash the store tells a request that may be at xAI from one that waited for a slot. A job xAI took
is handed to tracking in the same step that ends its submission, so a Cancel always finds it in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field

from services.jobs import endings
from services.jobs.attribution import Attribution
from services.jobs.charging import started_nothing
from services.jobs.listener import JobListener
from services.jobs.models import CancelResult, ErrorCode, Job, JobStatus, Mode
from services.jobs.queue import FairQueue
from services.jobs.validation import DEFAULT_EXTEND_S
from services.scheduler.context import Context
from services.scheduler.notices import QueueReports
from services.scheduler.polltable import Tracked
from services.scheduler.tracking import Tracking
from services.scheduler.uncertain import UncertainSlots
from services.xai.bodies import EditRequest, ExtendRequest, GenerationRequest, SubmitRequest
from services.xai.budget import RequestBudget
from services.xai.catalog import CLASSIC
from services.xai.errors import XaiError, XaiRateLimited
from services.xai.gate import SubmitCalledOff, SubmitGate

log = logging.getLogger(__name__)


class SentElsewhere(Exception):
    """Another process moved the job since this one did (it took over as the scheduler's leader while this one
    was frozen): this one must not send it."""


@dataclass(slots=True)
class _Submission:
    """An admitted job on its way to xAI: the gate a Cancel closes, and the request while it is being sent."""

    gate: SubmitGate
    send_token: str  # written with the move to "submitting"; the gate sends only while it is still the job's
    wire: asyncio.Task[str] | None = None
    cancel_requested: bool = False  # a Cancel came once the request was on the wire: cancel once xAI answers
    back_in_line: bool = False  # called off by a shutdown, not a person: it waits in line again
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # its outcome is in the store


class Admission:
    """The line of waiting jobs and the submits on their way; ``tracking`` gets each job xAI took."""

    def __init__(
        self,
        context: Context,
        budget: RequestBudget,
        listener: JobListener,
        tracking: Tracking,
        resume_origins: frozenset[str],
    ) -> None:
        self._c = context
        self._budget = budget
        self._tracking = tracking
        self._resume_origins = resume_origins  # whose jobs a later start follows again
        self._queue = FairQueue()
        self._reports = QueueReports(
            self._queue.positions, listener, context.tasks.spawn, context.settings, context.clocks
        )
        self._submitting: dict[int, _Submission] = {}
        self._uncertain = UncertainSlots(context.clocks.monotonic)
        self._attribution = Attribution(context.store.kv)

    @property
    def waiting(self) -> int:
        return len(self._queue)

    @property
    def submitting(self) -> int:
        """Admitted jobs on their way to xAI, and requests of unknown fate xAI may still be generating: each holds
        a concurrent slot."""
        return len(self._submitting) + self._uncertain.held

    def position(self, job_id: int) -> int | None:
        return self._queue.position(job_id)

    def holds(self, job_id: int) -> bool:
        """Whether the job is waiting in line or on its way to xAI."""
        return job_id in self._queue or job_id in self._submitting

    def enqueue(self, job: Job) -> None:
        """A freshly accepted (already stored) job joins the line."""
        self._queue.push(job.id, _owner_key(job))
        self._c.wake()
        self._reports.request()

    async def resume(self, job: Job) -> None:
        """A job the store says was waiting, or being sent when the bot stopped."""
        if job.status is JobStatus.QUEUED:
            self._queue.push(job.id, _owner_key(job))
        elif not job.charged:
            # Its request never went on the wire (it waited for a slot, or out a 429): it waits in line again.
            if await self._c.steps.move(job.id, JobStatus.SUBMITTING, JobStatus.QUEUED):
                self._queue.push(job.id, _owner_key(job))
        else:
            # We cannot know whether xAI received it; sending it again could bill twice. It stays charged, and
            # keeps a concurrent slot while xAI may be making it: the resume's scan of such jobs holds it
            # (Scheduler._resume, after this).
            await self._c.steps.end(job.id, JobStatus.SUBMITTING, endings.SUBMIT_UNCERTAIN)

    def hold_uncertain(self, job: Job) -> None:
        """Keep a slot for a request of unknown fate until its video would likely be done (counted from when it
        was sent; at most the job timeout): when it ended so (a crash mid-submit found at the next start, or a
        submit xAI did not answer), and at every start after (a new leader's term, a second crash), since the
        store is what remembers it (``JobRepository.uncertain_since``)."""
        sent_at = job.charged_at if job.charged_at is not None else job.updated_at
        away_s = max(0.0, self._c.clocks.wall() - sent_at)
        likely_done_s = min(self._tracking.likely_done_after(job), self._c.settings.job_timeout_s)
        self._uncertain.hold(job.id, likely_done_s - away_s)

    def admit_next(self) -> bool:
        """Send the job whose turn it is (the caller checked a concurrent slot is free); False when none waits."""
        job_id = self._queue.pop()
        if job_id is None:
            return False
        token = uuid.uuid4().hex
        submission = self._submitting[job_id] = _Submission(self._gate_for(job_id, token), token)
        self._c.tasks.spawn(self._submit(job_id, submission), f"submit-{job_id}")
        self._reports.request()
        return True

    async def cancel(self, job_id: int) -> CancelResult | None:
        """Stop a job that is waiting or on its way (see ``Scheduler.cancel``)."""
        if self._queue.remove(job_id):
            self._reports.request()
            if await self._c.steps.cancel(job_id, JobStatus.QUEUED, charged=False):
                return CancelResult.BEFORE_SENDING
            return None
        submission = self._submitting.get(job_id)
        if submission is None:
            return None
        if submission.gate.call_off():
            if submission.wire is not None:
                submission.wire.cancel()  # waiting for a budget slot or between retries: stop waiting
            await submission.settled.wait()
            return CancelResult.BEFORE_SENDING
        submission.cancel_requested = True
        submission.gate.called_off = True  # and if xAI turns it away (429), no retry goes out
        return CancelResult.AFTER_SENDING

    def call_off_all(self) -> None:
        """The bot is stopping: every request not yet on the wire waits in line for the next start."""
        for submission in self._submitting.values():
            if submission.gate.call_off():  # not sent yet: it waits in line for the next start, not "uncertain"
                submission.back_in_line = not submission.cancel_requested
                if submission.wire is not None:
                    submission.wire.cancel()

    def _gate_for(self, job_id: int, send_token: str) -> SubmitGate:
        """The job's gate, whose hooks keep the store's ``charged`` true exactly while a request may be at xAI:
        written before each attempt goes on the wire (only while ``send_token`` is still the job's), cleared when
        xAI provably turned it away."""

        async def on_wire() -> None:
            if not await self._c.steps.charge(job_id, send_token):
                raise SentElsewhere

        async def on_turned_away() -> None:
            await self._c.steps.set(job_id, charged=False)

        return SubmitGate(on_wire=on_wire, on_turned_away=on_turned_away)

    async def _submit(self, job_id: int, submission: _Submission) -> None:
        tracked = None
        try:
            tracked = await self._send(job_id, submission)
        except Exception:  # a bug or a failing store must end the job in words, never leave it "submitting"
            log.exception("Job %d: sending it to xAI failed inside the bot", job_id)
            sent = submission.gate.sent
            with contextlib.suppress(Exception):  # the store itself failing: the next start resumes the job
                ending = endings.broke_while_sending(sent)
                await self._c.steps.end(job_id, (JobStatus.QUEUED, JobStatus.SUBMITTING), ending, charged=sent)
        finally:
            # One step, no await: a Cancel finds the job either still submitting or already tracked.
            self._submitting.pop(job_id, None)
            if tracked is not None:
                self._tracking.follow(tracked)
            submission.settled.set()
            self._c.wake()
        if tracked is not None:
            await self._c.notices.status(job_id)

    async def _send(self, job_id: int, submission: _Submission) -> Tracked | None:
        """Send one admitted job to xAI and record how that went; the job to poll when xAI took it."""
        steps, gate = self._c.steps, submission.gate
        if gate.called_off:  # cancelled (or the bot is stopping) before anything happened
            await self._called_off(job_id, JobStatus.QUEUED, submission)
            return None
        # Not charged yet: the gate's hook writes that right before the request goes on the wire (so a crash
        # while it waits for a budget slot, or out a 429, leaves a job the next start puts back in line).
        if not await steps.move(job_id, JobStatus.QUEUED, JobStatus.SUBMITTING, send_token=submission.send_token):
            return None  # no longer waiting (another process took it)
        job = await self._c.store.jobs.get(job_id)
        assert job is not None
        request = await self._build_request(job)
        if request is None:
            await steps.end(job_id, JobStatus.SUBMITTING, endings.MISSING_INPUT, charged=False)
            return None
        if gate.called_off:  # cancelled while the job was being read from the store
            await self._called_off(job_id, JobStatus.SUBMITTING, submission)
            return None
        submission.wire = wire = asyncio.ensure_future(self._c.client.submit(request, gate=gate))
        try:
            await asyncio.wait({wire})
        except asyncio.CancelledError:
            wire.cancel()  # the bot is stopping: on the wire it stays "submitting" and charged (uncertain)
            raise
        try:
            request_id = wire.result()
        except SentElsewhere:
            log.warning("Job %d: another process took it over before it went out; not sent from here", job_id)
            return None
        except (SubmitCalledOff, asyncio.CancelledError):
            await self._called_off(job_id, JobStatus.SUBMITTING, submission)
            return None
        except XaiRateLimited as error:
            if submission.cancel_requested:
                await steps.cancel(job_id, JobStatus.SUBMITTING, charged=False)
                return None
            # xAI refused before doing any work: safe to wait in line again, handed back meanwhile.
            log.warning("Job %d: still rate limited after retries; back in line", job_id)
            if await steps.move(job_id, JobStatus.SUBMITTING, JobStatus.QUEUED, charged=False):
                if gate.called_off:  # a Cancel (or the shutdown) came while that was being written
                    await self._called_off(job_id, JobStatus.QUEUED, submission)
                else:
                    self._queue.push_front(job_id, _owner_key(job))
            self._budget.pause_for(error.retry_after or self._c.settings.rate_limit_pause_s)
            return None
        except XaiError as error:
            charged = not started_nothing(error, sent=gate.sent)
            if submission.cancel_requested:
                await steps.cancel(job_id, JobStatus.SUBMITTING, charged=charged)
            else:
                await steps.end(job_id, JobStatus.SUBMITTING, endings.xai_error(error), charged=charged)
                if charged and error.error_code is ErrorCode.XAI_UNAVAILABLE:
                    self.hold_uncertain(job)  # no answer (or an unclear one) after it went out: xAI may be making it
            return None
        now = self._c.clocks.monotonic()
        await steps.move(
            job_id,
            JobStatus.SUBMITTING,
            JobStatus.RUNNING,
            request_id=request_id,
            submitted_at=self._c.clocks.wall(),
            model=request.model,  # with the mode, resolution and duration: the kind its time is learnt for
        )
        log.info("Job %d submitted to xAI as %s", job_id, request_id)
        if submission.cancel_requested:  # the Cancel came while the request was on the wire: xAI works on it now
            await steps.cancel_while_at_xai(job_id)
            log.info("Job %d cancelled while it was sent; following it quietly until xAI is done", job_id)
        followed = job.origin.kind in self._resume_origins
        return self._tracking.sent(
            job, request_id, now, quiet=submission.cancel_requested, followed_after_restart=followed
        )

    async def _called_off(self, job_id: int, status: JobStatus, submission: _Submission) -> None:
        """Nothing reached xAI: the job is handed back, cancelled or (at shutdown) waiting in line again."""
        if submission.back_in_line:
            if status is not JobStatus.QUEUED:
                await self._c.steps.move(job_id, status, JobStatus.QUEUED, charged=False)
            return
        log.info("Job %d: cancelled before it was sent to xAI", job_id)
        await self._c.steps.cancel(job_id, status, charged=False)

    async def _build_request(self, job: Job) -> SubmitRequest | None:
        media_input = await self._c.store.jobs.get_input(job.id) if job.has_media else None
        # Each job goes to the model it was accepted for (one from before models were stored: the classic one,
        # which it was priced at), with its requester as a salted hash.
        model, user = job.model or CLASSIC, await self._attribution.user_of(job.origin)
        if job.mode is Mode.EDIT:
            if media_input is None:
                return None
            return EditRequest(prompt=job.prompt, video=media_input, model=model, user=user)
        if job.mode is Mode.EXTEND:  # the video to continue was stored with the job when it was accepted
            if media_input is None:
                return None
            added = job.options.duration or DEFAULT_EXTEND_S
            return ExtendRequest(prompt=job.prompt, duration=added, video=media_input, model=model, user=user)
        if job.mode is Mode.IMAGE and media_input is None:
            return None
        return GenerationRequest(prompt=job.prompt, options=job.options, image=media_input, model=model, user=user)


def _owner_key(job: Job) -> tuple[str, int | None]:
    """Whose line a job waits in: one person's burst never starves the rest."""
    return (job.origin.kind, job.origin.user_id)
