"""The xAI emulator refuses what each model cannot do the way xAI does (a 400 on the POST) and bills each model
at its own price, so the bot's own table (services/xai/catalog.py) is checked against an independent one."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from services.jobs.models import MediaInput, Mode, VideoOptions
from services.xai.answers import Done, Pending
from services.xai.bodies import EditRequest, GenerationRequest, SubmitRequest
from services.xai.catalog import DEFAULT_OFFER, build_catalog
from services.xai.errors import XaiError
from tests.emulators.xai_emulator import Outcome, XaiEmulator
from tests.mediafactory import make_image, make_mp4
from tests.xai_rig import client_for

CATALOG = build_catalog(DEFAULT_OFFER, {})


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.mark.parametrize(
    "request_",
    [
        EditRequest("sepia", video=MediaInput(make_mp4(2.0), "video/mp4", "a.mp4"), model="grok-imagine-video-1.5"),
        EditRequest(
            "sepia", video=MediaInput(make_mp4(2.0), "video/mp4", "a.mp4"), model="grok-imagine-video-1.5-lite"
        ),
        GenerationRequest("x", VideoOptions(resolution="1080p"), model="grok-imagine-video"),
        GenerationRequest("x", VideoOptions(), model="grok-imagine-video-9"),
    ],
    ids=["edit-on-1.5", "edit-on-lite", "1080p-on-classic", "unknown-model"],
)
async def test_xai_refuses_what_a_model_cannot_do_on_the_post(
    xai: XaiEmulator, session: aiohttp.ClientSession, request_: SubmitRequest
) -> None:
    with pytest.raises(XaiError) as refused:
        await client_for(session, xai).submit(request_)
    assert refused.value.status == 400 and not xai.jobs


@pytest.mark.parametrize("model", DEFAULT_OFFER)
@pytest.mark.parametrize(("resolution", "image"), [("480p", False), ("720p", True), ("1080p", False)])
async def test_xai_bills_what_the_bots_table_estimates(
    xai: XaiEmulator, session: aiohttp.ClientSession, model: str, resolution: str, image: bool
) -> None:
    """For every model and resolution it offers, xAI's reported ticks equal the catalog's estimate."""
    spec = CATALOG.spec(model)
    if resolution not in spec.ticks_per_second:
        pytest.skip(f"{model} does not offer {resolution}")
    xai.outcomes.append(Outcome(generation_s=0))
    picture = MediaInput(make_image("PNG"), "image/png", "a.png") if image else None
    client = client_for(session, xai)
    request_id = await client.submit(
        GenerationRequest("x", VideoOptions(duration=5, resolution=resolution), picture, model=model)
    )
    result = await client.poll(request_id)
    while isinstance(result, Pending):
        result = await client.poll(request_id)
    mode = Mode.IMAGE if image else Mode.TEXT
    assert isinstance(result, Done) and result.cost_usd_ticks == spec.price_ticks(mode, 5, resolution)
