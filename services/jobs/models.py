"""Plain data shared by every layer: what a job is, what it asks for, where it stands.

Nothing here does I/O or knows about Discord; the cogs, the scheduler, the store and the
terminal command all speak in these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypedDict

ASPECT_RATIOS: tuple[str, ...] = ("16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3")
RESOLUTIONS: tuple[str, ...] = ("480p", "720p", "1080p")  # which a model offers: services/xai/catalog.py
MIN_DURATION_S = 1
MAX_DURATION_S = 15
DEFAULT_DURATION_S = 8  # xAI's own default (the OpenAPI document says 8, not 10)
MAX_EDIT_INPUT_S = 8.7


class Mode(StrEnum):
    """What kind of video a job makes; it follows from the attachment, never from a flag."""

    TEXT = "text"  # prompt only
    IMAGE = "image"  # animate a still image
    EDIT = "edit"  # edit a short video
    EXTEND = "extend"  # continue a video (2 to 15 s) by a few seconds


class JobStatus(StrEnum):
    """A job's life. Statuses only move forward (see ``FORWARD``)."""

    QUEUED = "queued"
    SUBMITTING = "submitting"
    RUNNING = "running"
    DOWNLOADING = "downloading"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    FAILED = "failed"
    MODERATED = "moderated"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        """Accepted and not yet finished: it counts against concurrency limits."""
        return not self.is_terminal


TERMINAL_STATUSES = frozenset(
    {JobStatus.DELIVERED, JobStatus.FAILED, JobStatus.MODERATED, JobStatus.EXPIRED, JobStatus.CANCELLED}
)

# Which jobs count against the limits (per member, per server, spend) is one rule, written once here as data so
# that Python (``Job.counted`` / ``Job.in_flight``) and the store's SQL (services/store/counting.py renders it)
# cannot drift apart. A job counts while it is in the making (waiting in line included) and, whatever its
# ending, once it is *charged*: from the moment its submit may have reached xAI, which may then bill it. Only a
# job that provably never started anything at xAI is handed back (see services/jobs/charging.py for when the
# flag is cleared). In the rolling windows a job still in the making counts now, whatever its age; a finished
# one counts from when it was charged (``Job.counts_from``), so a job that waited through an outage counts on
# the day it was sent. What a counted job costs is priced in Python only (``GuildPolicy.spend_ticks``).


@dataclass(frozen=True, slots=True)
class Condition:
    """One column holding one of ``values`` (none given: NULL), read both on a ``Job`` and as SQL."""

    column: str  # a ``jobs`` column, named as the ``Job`` attribute that holds it
    values: tuple[JobStatus | bool, ...] = ()

    def holds(self, job: Job) -> bool:
        value = getattr(job, self.column)
        return value is None if not self.values else value in self.values

    def sql(self) -> str:
        if not self.values:
            return f"{self.column} IS NULL"
        literals = [_sql_literal(value) for value in self.values]
        return f"{self.column} = {literals[0]}" if len(literals) == 1 else f"{self.column} IN ({', '.join(literals)})"


def _sql_literal(value: JobStatus | bool) -> str:
    return repr(value.value) if isinstance(value, JobStatus) else str(int(value))


@dataclass(frozen=True, slots=True)
class Rule:
    """Any one of ``any_of``'s groups, each holding when all its conditions do."""

    any_of: tuple[tuple[Condition, ...], ...]

    def holds(self, job: Job) -> bool:
        return any(all(condition.holds(job) for condition in group) for group in self.any_of)

    def sql(self) -> str:
        groups = [_all_of(group, alone=len(self.any_of) == 1) for group in self.any_of]
        return f"({' OR '.join(groups)})"


def _all_of(group: tuple[Condition, ...], *, alone: bool) -> str:
    conditions = " AND ".join(condition.sql() for condition in group)
    return conditions if alone or len(group) == 1 else f"({conditions})"


CHARGED = Condition("charged", (True,))
# Cancelled while xAI kept generating it, and xAI has not said it is over. Such a "quiet" job is cancelled for
# its requester (nothing is fetched or posted), but xAI still works on it and uses one of the account's
# concurrent slots, so it counts as in the making until xAI finishes it (the store writes its ``ended_at`` then).
STILL_AT_XAI = Rule(((Condition("status", (JobStatus.CANCELLED,)), CHARGED, Condition("ended_at")),))
# Still in the making: active, or still at xAI. Rendered, the WHERE clause of the ``jobs_in_flight`` index
# (migration 7).
IN_THE_MAKING = Rule(((Condition("status", tuple(sorted(s for s in JobStatus if s.is_active))),), *STILL_AT_XAI.any_of))
# Counted against the limits: in the making, or charged (for good, in a window from its ``charged_at``).
COUNTED = Rule((*IN_THE_MAKING.any_of, (CHARGED,)))


@dataclass(frozen=True, slots=True)
class Use:
    """One counted job as the limits see it: when it started counting, whether it is still in the making, and
    what it counts for against spend, in ticks.

    ``charged_at`` is when its request last went on the wire to xAI (None: not sent yet, so it will count a
    whole window from the moment it is). A finished job counts in a window from that moment; one still in the
    making counts now, however old it is.
    """

    charged_at: float | None
    in_flight: bool
    ticks: int = 0


# Where a job may go from each status. The store refuses anything else.
FORWARD: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.SUBMITTING, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.SUBMITTING: frozenset(
        {JobStatus.RUNNING, JobStatus.QUEUED, JobStatus.FAILED, JobStatus.MODERATED, JobStatus.CANCELLED}
    ),
    JobStatus.RUNNING: frozenset(
        {JobStatus.DOWNLOADING, JobStatus.FAILED, JobStatus.MODERATED, JobStatus.EXPIRED, JobStatus.CANCELLED}
    ),
    JobStatus.DOWNLOADING: frozenset({JobStatus.DELIVERING, JobStatus.FAILED, JobStatus.MODERATED, JobStatus.EXPIRED}),
    JobStatus.DELIVERING: frozenset({JobStatus.DELIVERED, JobStatus.FAILED}),
}


class CancelResult(StrEnum):
    """What a Cancel achieved: whether the request had reached xAI (which may then charge for it)."""

    BEFORE_SENDING = "before_sending"  # nothing was sent to xAI; the job costs nothing
    AFTER_SENDING = "after_sending"  # the request had already gone to xAI, which may still charge for it


class ErrorCode(StrEnum):
    """Why a job did not end in a delivered video; stored with the job and shown in words."""

    BAD_INPUT = "bad_input"
    XAI_FAILED = "xai_failed"
    XAI_REJECTED = "xai_rejected"
    XAI_AUTH = "xai_auth"
    XAI_CREDITS = "xai_credits"
    XAI_UNAVAILABLE = "xai_unavailable"
    MODERATED = "moderated"
    EXPIRED = "expired"
    TIMEOUT = "timeout"
    SUBMIT_UNCERTAIN = "submit_uncertain"
    DOWNLOAD_FAILED = "download_failed"
    DELIVERY_FAILED = "delivery_failed"
    CANCELLED = "cancelled"
    MISSING_INPUT = "missing_input"


@dataclass(frozen=True, slots=True)
class VideoOptions:
    """The knobs a person may turn. ``None`` means "let xAI decide" (or: not applicable to edits)."""

    duration: int | None = None  # seconds, MIN_DURATION_S to MAX_DURATION_S
    aspect_ratio: str | None = None  # one of ASPECT_RATIOS
    resolution: str | None = None  # one of RESOLUTIONS


@dataclass(frozen=True, slots=True)
class MediaInput:
    """An input file already in memory (Discord links expire, so bytes are taken at once)."""

    data: bytes = field(repr=False)
    mime_type: str
    filename: str

    def __repr__(self) -> str:  # never dump megabytes into a log line
        return f"MediaInput({self.filename!r}, {self.mime_type}, {len(self.data)} bytes)"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a request came from and where its result should go back to. All ids are Discord snowflakes."""

    guild_id: int | None = None
    channel_id: int | None = None
    user_id: int | None = None
    source_message_id: int | None = None  # the message to reply to (context menu / reply trigger / button)
    kind: str = "discord"  # "discord" or "cli"


@dataclass(frozen=True, slots=True)
class JobRequest:
    """Everything needed to accept a job; built by a cog (or the terminal) and handed to the services."""

    mode: Mode  # follows from the attachment: none, an image, or a video
    prompt: str
    options: VideoOptions
    origin: Origin  # who asked, where, and where the video goes back to
    media: MediaInput | None = None  # the attachment, already in memory
    parent_job_id: int | None = None  # the job a follow-up (Edit, Again) starts from
    status_message_id: int | None = None  # the message that shows this job's progress
    model: str | None = None  # the xAI model it runs on, decided at acceptance (services/xai/catalog.py)


@dataclass(slots=True)
class Job:
    """A job as the store knows it."""

    id: int
    mode: Mode
    prompt: str
    options: VideoOptions
    origin: Origin
    status: JobStatus  # only moves forward (``FORWARD``)
    created_at: float  # when it was asked for
    updated_at: float
    request_id: str | None = None  # xAI's id for it, once a submit was answered
    progress: int | None = None  # percent, as xAI last reported it
    submitted_at: float | None = None  # when xAI answered its submit with a request id
    finished_at: float | None = None  # when xAI reported the video ready (as seen by us)
    downloaded_at: float | None = None
    delivered_at: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    cost_usd_ticks: int | None = None
    output_path: str | None = None
    output_bytes: int | None = None
    video_duration_s: float | None = None
    status_message_id: int | None = None
    delivered_channel_id: int | None = None
    delivered_message_id: int | None = None
    delivery_method: str | None = None
    deleted_at: float | None = None
    parent_job_id: int | None = None
    has_media: bool = False
    charged: bool = False  # its submit may have reached xAI: it counts whatever its ending
    charged_at: float | None = None  # when its request last went on the wire (the moment it counts from)
    ended_at: float | None = None  # when it reached a final status: its media is kept from then on
    media_purged_at: float | None = None  # its files and stored input were removed (the row stays)
    forgotten_at: float | None = None  # a moderator had its requester's prompts and files erased
    model: str | None = None  # the xAI model it was sent to (None: sent before the bot stored it)
    generation_s: float | None = None  # how long xAI took, as judged when its video was found ready

    @property
    def shown_prompt(self) -> str:
        """The prompt as views and exports show it: a forgotten one never reappears, even before it is erased."""
        return FORGOTTEN if self.forgotten_at is not None else self.prompt

    @property
    def counted(self) -> bool:
        """Whether this job counts against the limits (``COUNTED``)."""
        return COUNTED.holds(self)

    @property
    def in_flight(self) -> bool:
        """Still in the making, a quiet cancelled job included (``IN_THE_MAKING``)."""
        return IN_THE_MAKING.holds(self)

    @property
    def counts_from(self) -> float:
        """The moment a finished job counts from in the limits' windows: when it was sent, else its creation."""
        return self.charged_at if self.charged_at is not None else self.created_at

    def counts_at(self, now: float) -> float:
        """Where the limits' windows place this job: now while it is in the making, else ``counts_from``."""
        return now if self.in_flight else self.counts_from

    @property
    def elapsed_s(self) -> float:
        end = self.finished_at or self.updated_at
        return max(0.0, end - self.created_at)


class JobUpdate(TypedDict, total=False):
    """The columns a step may set besides ``status`` (``JobRepository.transition`` and ``update``), typed.

    Its keys are also the store's list of writable columns: a name never comes from user input.
    """

    status_message_id: int | None
    request_id: str | None
    progress: int | None
    submitted_at: float | None
    finished_at: float | None
    downloaded_at: float | None
    delivered_at: float | None
    error_code: str | None
    error_message: str | None
    cost_usd_ticks: int | None
    output_path: str | None
    output_bytes: int | None
    video_duration_s: float | None
    delivered_channel_id: int | None
    delivered_message_id: int | None
    delivery_method: str | None
    deleted_at: float | None
    deleted_by: int | None
    notified_at: float | None
    charged: bool
    charged_at: float | None
    model: str | None
    generation_s: float | None
    send_token: str | None  # which move to "submitting" may send the request (JobRepository.charge)


FORGOTTEN = "(forgotten)"  # what views and the CSV show instead of a prompt a moderator had erased

USD_TICKS_PER_DOLLAR = 10_000_000_000  # 1 cent = 100,000,000 ticks


def ticks_to_usd(ticks: int | None) -> float:
    return 0.0 if ticks is None else ticks / USD_TICKS_PER_DOLLAR
