"""A server's rules for the bot: limits, who is staff, where and how videos may be made.

Moderators change a few fields; everything they never touched follows the bot-wide defaults from
the settings (so an admin raising a default in ``.env`` reaches every server that kept it). Only
the overrides are stored, as JSON, one row per server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from typing import Any

from services.jobs.models import DEFAULT_DURATION_S, MAX_DURATION_S, RESOLUTIONS, Mode, ticks_to_usd

EDIT_ESTIMATE_S = 9  # an edit's length follows its input (at most 8.7 s): price it as 9 s until xAI says


@dataclass(frozen=True, slots=True)
class LimitDefaults:
    """Bot-wide defaults, from the environment. ``None`` means no limit."""

    user_videos: int | None = 5
    user_window_minutes: int = 60
    user_active_jobs: int | None = 2
    server_videos_per_day: int | None = 50
    server_usd_per_day: float | None = 10.0
    usd_per_second_480p: float = 0.05
    usd_per_second_720p: float = 0.07


@dataclass(frozen=True, slots=True)
class GuildPolicy:
    """Everything the bot needs to decide whether a member may start a video in a server.

    Staff (Manage Server, or the staff role) get ``staff_videos`` / ``staff_active_jobs`` instead of the
    member limits; ``None`` there means no limit. The server-wide caps apply to everyone: they protect the bill.
    """

    user_videos: int | None = 5
    user_window_minutes: int = 60
    user_active_jobs: int | None = 2
    server_videos_per_day: int | None = 50
    server_usd_per_day: float | None = 10.0
    staff_role_id: int | None = None
    staff_videos: int | None = None
    staff_active_jobs: int | None = None
    channel_ids: frozenset[int] = frozenset()  # empty: every channel
    allowed_modes: frozenset[Mode] = frozenset(Mode)
    max_duration: int = MAX_DURATION_S
    default_duration: int | None = None
    default_resolution: str | None = None
    usd_per_second_480p: float = field(default=0.05, compare=False)
    usd_per_second_720p: float = field(default=0.07, compare=False)

    @property
    def user_window_s(self) -> float:
        return self.user_window_minutes * 60.0

    def allows_channel(self, *channel_ids: int | None) -> bool:
        """A thread counts as its parent channel too, so allowing a channel allows its threads."""
        return not self.channel_ids or any(c in self.channel_ids for c in channel_ids if c is not None)

    def estimate_usd(self, mode: Mode, duration: int | None, resolution: str | None) -> float:
        """What a video will cost before xAI says: seconds times the per-second price of its resolution.

        An edit keeps its input's resolution, which is not recorded: it is priced at 720p, so an edit is never
        counted for less than it may cost."""
        seconds = float(duration or (EDIT_ESTIMATE_S if mode is Mode.EDIT else DEFAULT_DURATION_S))
        at_720p = resolution == "720p" or (resolution is None and mode is Mode.EDIT)
        price = self.usd_per_second_720p if at_720p else self.usd_per_second_480p
        return round(seconds * price, 4)

    def spend_usd(
        self, cost_usd_ticks: int | None, counted: bool, mode: Mode, duration: int | None, resolution: str | None
    ) -> float:
        """What a job counts for against spend: nothing unless it counts (``Job.counted``); then xAI's figure
        once reported, else the estimate. The one price rule: the spend limit, ``/quota`` and ``/usage`` all
        price with it (the store's SQL only selects and groups the counted jobs)."""
        if not counted:
            return 0.0
        if cost_usd_ticks is not None:
            return ticks_to_usd(cost_usd_ticks)
        return self.estimate_usd(mode, duration, resolution)


def default_policy(defaults: LimitDefaults) -> GuildPolicy:
    """A server with no changes of its own: the bot-wide defaults, field by field."""
    return GuildPolicy(**{f.name: getattr(defaults, f.name) for f in fields(LimitDefaults)})


# The fields a moderator may set, and how each is checked; prices stay bot-wide.
SETTABLE = frozenset(f.name for f in fields(GuildPolicy)) - {"usd_per_second_480p", "usd_per_second_720p"}


class PolicyError(ValueError):
    """A moderator asked for a setting that makes no sense; the text says why."""


def apply_overrides(base: GuildPolicy, overrides: dict[str, Any]) -> GuildPolicy:
    """The defaults with a server's stored overrides on top (unknown keys from older versions are ignored)."""
    values = {key: _decode(key, value) for key, value in overrides.items() if key in SETTABLE}
    return validate(replace(base, **values))


def validate(policy: GuildPolicy) -> GuildPolicy:
    for name in ("user_videos", "user_active_jobs", "server_videos_per_day", "staff_videos", "staff_active_jobs"):
        value = getattr(policy, name)
        if value is not None and value < 1:
            raise PolicyError(f"{name.replace('_', ' ')} must be at least 1 (or 0 for no limit)")
    if policy.server_usd_per_day is not None and policy.server_usd_per_day <= 0:
        raise PolicyError("the daily spend limit must be more than $0 (or 0 for no limit)")
    if not 1 <= policy.user_window_minutes <= 7 * 24 * 60:
        raise PolicyError("the window must be between 1 minute and 7 days")
    if not 1 <= policy.max_duration <= MAX_DURATION_S:
        raise PolicyError(f"the longest duration must be between 1 and {MAX_DURATION_S} seconds")
    if policy.default_duration is not None and not 1 <= policy.default_duration <= policy.max_duration:
        raise PolicyError(f"the default duration must be between 1 and the longest allowed ({policy.max_duration} s)")
    if policy.default_resolution is not None and policy.default_resolution not in RESOLUTIONS:
        raise PolicyError(f"the default resolution must be one of {', '.join(RESOLUTIONS)}")
    if not policy.allowed_modes:
        raise PolicyError("at least one kind of video (text, image or edit) must stay allowed")
    return policy


def encode_overrides(overrides: dict[str, Any]) -> str:
    return json.dumps({key: _encode(value) for key, value in sorted(overrides.items())})


def decode_overrides(text: str) -> dict[str, Any]:
    raw = json.loads(text)
    return raw if isinstance(raw, dict) else {}


def _encode(value: Any) -> Any:
    if isinstance(value, frozenset):
        return sorted(str(item) if isinstance(item, Mode) else item for item in value)
    return value


def _decode(key: str, value: Any) -> Any:
    if key == "channel_ids":
        return frozenset(int(item) for item in value)
    if key == "allowed_modes":
        return frozenset(Mode(item) for item in value)
    return value
