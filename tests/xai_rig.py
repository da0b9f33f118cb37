"""What the xAI client tests share: a request, and a client on the emulator whose waits return at once."""

from __future__ import annotations

import aiohttp

from services.config import Secret
from services.jobs.models import VideoOptions
from services.xai.bodies import GenerationRequest
from services.xai.budget import RequestBudget
from services.xai.client import XaiClient
from tests.emulators.xai_emulator import XaiEmulator

TEXT = GenerationRequest("a cat surfing", VideoOptions(duration=3, aspect_ratio="9:16", resolution="720p"))


async def no_sleep(seconds: float) -> None:
    """Retry-After and backoff waits are not slept in these tests."""


def client_for(
    session: aiohttp.ClientSession,
    xai: XaiEmulator,
    *,
    key: str | None = None,
    budget: RequestBudget | None = None,
    request_timeout_s: float = 5.0,  # generous: a loaded CI machine may take a while to answer on loopback
) -> XaiClient:
    return XaiClient(
        session,
        api_key=Secret(key or xai.api_key),
        base_url=xai.base_url,
        budget=budget or RequestBudget(60_000),
        request_timeout_s=request_timeout_s,
        rate_limit_backoff_s=0.01,
        sleep=no_sleep,
    )
