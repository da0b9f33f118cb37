"""A server's rules for the bot: limits, who is staff, where and how videos may be made.

Moderators change a few fields; everything they never touched follows the bot-wide defaults from
the settings (so an admin raising a default in ``.env`` reaches every server that kept it). Only
the overrides are stored, as JSON, one row per server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from typing import Any

from services.jobs.models import MAX_DURATION_S, RESOLUTIONS, Mode
from services.xai.catalog import DEFAULT_OFFER, Catalog, build_catalog, usd_to_ticks

DEFAULT_CATALOG = build_catalog(DEFAULT_OFFER, {})


@dataclass(frozen=True, slots=True)
class LimitDefaults:
    """Bot-wide defaults, from the environment. ``None`` means no limit."""

    user_videos: int | None = 5
    user_window_minutes: int = 60
    user_active_jobs: int | None = 2
    server_videos_per_day: int | None = 50
    server_usd_per_day: float | None = 10.0
    confirm_usd: float | None = 0.50  # ask before a video dearer than this (None: never)
    catalog: Catalog = DEFAULT_CATALOG


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
    default_model: str | None = None  # None: the bot's default (the first of XAI_MODELS)
    allowed_models: frozenset[str] = frozenset()  # empty: every offered model
    confirm_usd: float | None = 0.50  # ask before a video dearer than this (None: never)
    catalog: Catalog = field(default=DEFAULT_CATALOG, compare=False)  # the models and prices: bot-wide

    @property
    def user_window_s(self) -> float:
        return self.user_window_minutes * 60.0

    def allows_channel(self, *channel_ids: int | None) -> bool:
        """A thread counts as its parent channel too, so allowing a channel allows its threads."""
        return not self.channel_ids or any(c in self.channel_ids for c in channel_ids if c is not None)

    @property
    def server_ticks_per_day(self) -> int | None:
        return None if self.server_usd_per_day is None else usd_to_ticks(self.server_usd_per_day)

    @property
    def confirm_ticks(self) -> int | None:
        return None if self.confirm_usd is None else usd_to_ticks(self.confirm_usd)

    def allows_model(self, name: str) -> bool:
        return not self.allowed_models or name in self.allowed_models

    def estimate_ticks(self, model: str | None, mode: Mode, duration: int | None, resolution: str | None) -> int:
        """What a video will cost before xAI says, in ticks: its model's price (services/xai/catalog.py)."""
        return self.catalog.price_ticks(model, mode, duration, resolution)

    def spend_ticks(
        self,
        cost_usd_ticks: int | None,
        counted: bool,
        model: str | None,
        mode: Mode,
        duration: int | None,
        resolution: str | None,
    ) -> int:
        """What a job counts for against spend: nothing unless it counts (``Job.counted``); then xAI's figure
        once reported, else its model's estimate. The one price rule: the spend limit, ``/quota`` and ``/usage``
        all price with it (the store's SQL only selects and groups the counted jobs)."""
        if not counted:
            return 0
        if cost_usd_ticks is not None:
            return cost_usd_ticks
        return self.estimate_ticks(model, mode, duration, resolution)


def default_policy(defaults: LimitDefaults) -> GuildPolicy:
    """A server with no changes of its own: the bot-wide defaults, field by field."""
    return GuildPolicy(**{f.name: getattr(defaults, f.name) for f in fields(LimitDefaults)})


# The fields a moderator may set, and how each is checked; prices stay bot-wide.
SETTABLE = frozenset(f.name for f in fields(GuildPolicy)) - {"catalog"}


class PolicyError(ValueError):
    """A moderator asked for a setting that makes no sense; the text says why."""


def apply_overrides(base: GuildPolicy, overrides: dict[str, Any]) -> GuildPolicy:
    """The defaults with a server's stored overrides on top (unknown keys from older versions are ignored)."""
    values = {key: _decode(key, value) for key, value in overrides.items() if key in SETTABLE}
    # A model the admin stopped offering (XAI_MODELS) falls out of a server's choices rather than breaking them.
    offered = set(base.catalog.names)
    if values.get("default_model") not in offered:
        values.pop("default_model", None)
    if values.get("allowed_models"):  # all fallen out: kept to the bot's default, not opened to every model
        values["allowed_models"] = values["allowed_models"] & offered or frozenset({base.catalog.default.name})
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
    if policy.confirm_usd is not None and policy.confirm_usd <= 0:
        raise PolicyError("the confirm threshold must be more than $0 (or 0 to never ask)")
    offered = policy.catalog.names
    if policy.default_model is not None and policy.default_model not in offered:
        raise PolicyError(f"the default model must be one of {', '.join(offered)}")
    if policy.default_model is not None and not policy.allows_model(policy.default_model):
        raise PolicyError("the default model must be one of the allowed models")
    if not policy.allowed_models & set(offered) and policy.allowed_models:
        raise PolicyError(f"at least one offered model must stay allowed ({', '.join(offered)})")
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
    if key == "allowed_models":
        return frozenset(str(item) for item in value)
    return value
