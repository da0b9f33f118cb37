"""Which xAI model a request runs on: the one asked for, else the server's default, else the bot's; edits and
extensions go to the model that can make them whatever was chosen. Checked against the model before anything is
stored or sent, so a refusal (a 1080p edit, a model this server does not allow) says what would work instead.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NoReturn

from services.jobs.models import RESOLUTIONS, JobRequest
from services.policy.guild_policy import GuildPolicy
from services.policy.limits import Limit, Refusal, Refused
from services.xai.catalog import MODE_WORDS, check_request


def choose_model(policy: GuildPolicy, request: JobRequest, unfilled: JobRequest | None = None) -> JobRequest:
    """``request`` with its model decided; raises ``Refused`` (``Limit.MODEL``) when no allowed model can make it.

    ``unfilled`` is the request before the server's defaults: a default resolution the model does not offer (a
    1080p default, the classic model) becomes the model's nearest below, since nobody asked for it."""
    catalog, mode, asked = policy.catalog, request.mode, request.model
    allowed = [name for name in catalog.names if policy.allows_model(name)]
    if asked is not None and asked not in allowed:
        where = "here" if catalog.get(asked) is None else "in this server"
        _refuse(f"{asked} is not offered {where}; choose one of {', '.join(allowed)}.")
    preferred = catalog.get(asked or policy.default_model) or catalog.default
    candidates = (preferred, *catalog.models)
    spec = next((s for s in candidates if mode in s.modes and policy.allows_model(s.name)), None)
    if spec is None:
        able = [s.name for s in catalog.models if mode in s.modes]
        _refuse(
            f"{MODE_WORDS[mode].capitalize()} run only on {' or '.join(able) or 'a model this bot does not offer'}, "
            "which this server does not allow. Ask a moderator, or make another kind of video."
        )
    offered, resolution = spec.resolutions_for(mode), request.options.resolution
    defaulted = unfilled is not None and unfilled.options.resolution is None
    if defaulted and resolution is not None and resolution not in offered:
        rank = {name: RESOLUTIONS.index(name) if name in RESOLUTIONS else -1 for name in (*offered, resolution)}
        below = [name for name in offered if rank[name] < rank[resolution]]
        nearest = max(below, key=rank.__getitem__) if below else min(offered, key=rank.__getitem__, default=None)
        request = replace(request, options=replace(request.options, resolution=nearest))
    problem = check_request(spec, mode, request.options.resolution)
    if problem is not None:
        _refuse(problem)
    return replace(request, model=spec.name)


def _refuse(reason: str) -> NoReturn:
    raise Refused(Refusal(Limit.MODEL, reason))
