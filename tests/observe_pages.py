"""``/healthz`` and ``/metrics`` of a bot the tests run: serve them for a BotRig bot, and read them back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot import GrokVideoBot
from services.config import ObserveSettings
from services.observe.metrics import Readings
from services.observe.server import serving


@contextlib.asynccontextmanager
async def pages(bot: GrokVideoBot) -> AsyncIterator[str]:
    """The two pages of ``bot``, as ``python bot.py`` serves them, on a free port; yields the base URL."""
    readings = Readings(bot.runtime, bot.delivery.posting, bot.health)
    async with serving(ObserveSettings(http_port=0), bot.health, readings) as port:
        assert port is not None
        yield f"http://127.0.0.1:{port}"


async def get(url: str) -> tuple[int, str, str]:
    """(status, body, content type) of one GET."""
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text(), response.headers.get("Content-Type", "")


async def wait_for_health(base: str, status: int, timeout: float = 20.0) -> str:
    """Ask ``/healthz`` until it answers ``status`` (the bot connects, or loses a part, on its own time)."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: tuple[int, str] | None = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            got, body, _ = await get(f"{base}/healthz")
            last = (got, body)
            if got == status:
                return body
        except aiohttp.ClientConnectionError as error:
            last = (0, str(error))
        await asyncio.sleep(0.05)
    raise AssertionError(f"/healthz never answered {status}; last: {last}")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a metrics page, keyed by (name, sorted labels); checks the page parses as Prometheus'."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def metrics(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, body, content_type = await get(f"{base}/metrics")
    assert status == 200 and content_type.startswith("text/plain"), (status, content_type)
    return samples(body)
