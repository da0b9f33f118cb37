"""The xAI client against the emulator over real HTTP: every kind of answer xAI gives."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest

from services.jobs.models import MediaInput, VideoOptions
from services.xai.answers import Done, Expired, Failed, Moderated, Pending
from services.xai.bodies import EditRequest, GenerationRequest
from services.xai.budget import RequestBudget
from services.xai.client import XaiClient
from services.xai.errors import (
    XaiAuthError,
    XaiCreditsExhausted,
    XaiProtocolError,
    XaiRateLimited,
    XaiRejected,
    XaiServerError,
    XaiUnavailable,
)
from tests.emulators.xai_emulator import Outcome, XaiEmulator
from tests.xai_rig import TEXT, client_for


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


async def _poll_until_final(client: XaiClient, request_id: str) -> object:
    for _ in range(200):
        result = await client.poll(request_id)
        if not isinstance(result, Pending):
            return result
    raise AssertionError("never finished")


async def test_text_submit_uses_the_official_shape(xai: XaiEmulator, session: aiohttp.ClientSession) -> None:
    """Model, prompt and options go to /videos/generations; unset options are omitted."""
    await client_for(session, xai).submit(TEXT)
    request = xai.requests[-1]
    assert request.path == "/v1/videos/generations"
    assert request.body == {
        "model": "grok-imagine-video",
        "prompt": "a cat surfing",
        "duration": 3,
        "aspect_ratio": "9:16",
        "resolution": "720p",
    }


async def test_image_is_sent_as_an_object_with_a_data_uri(xai: XaiEmulator, session: aiohttp.ClientSession) -> None:
    """{"image": {"url": "data:..."}}, never a top-level image_url."""
    image = MediaInput(b"\x89PNG\r\n\x1a\nrest", "image/png", "a.png")
    await client_for(session, xai).submit(GenerationRequest("move", VideoOptions(), image=image))
    body = xai.requests[-1].body
    assert body["image"]["url"].startswith("data:image/png;base64,") and "image_url" not in body


async def test_edits_go_to_their_own_endpoint_without_options(xai: XaiEmulator, session: aiohttp.ClientSession) -> None:
    """POST /videos/edits carries only model, prompt and video."""
    clip = MediaInput(b"\x00\x00\x00\x18ftypmp42", "video/mp4", "a.mp4")
    await client_for(session, xai).submit(EditRequest("sepia", video=clip))
    request = xai.requests[-1]
    assert request.path == "/v1/videos/edits" and set(request.body) == {"model", "prompt", "video"}


@pytest.mark.parametrize("style", ["empty", "json"])
async def test_pending_answers_202_with_or_without_a_body(
    xai: XaiEmulator, session: aiohttp.ClientSession, style: str
) -> None:
    """An empty 202 and a 202 with progress both mean pending."""
    xai.outcomes.append(Outcome(kind="never", pending_body=style))  # type: ignore[arg-type]
    client = client_for(session, xai)
    result = await client.poll(await client.submit(TEXT))
    assert isinstance(result, Pending)
    assert result.progress == (None if style == "empty" else 5)


async def test_done_carries_the_url_duration_and_cost(xai: XaiEmulator, session: aiohttp.ClientSession) -> None:
    """A finished job gives the video's address, its length and xAI's cost in ticks."""
    xai.outcomes.append(Outcome(generation_s=0))
    client = client_for(session, xai)
    result = await _poll_until_final(client, await client.submit(TEXT))
    assert isinstance(result, Done) and result.url.split("?")[0].endswith(".mp4")
    assert result.duration_s == 3 and result.cost_usd_ticks == 2_100_000_000  # 3 s at 720p, $0.07 a second


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (Outcome(kind="failed", error_code="service_unavailable", error_message="overloaded"), Failed),
        (Outcome(kind="moderated"), Moderated),
        (Outcome(kind="moderated_400"), Moderated),
        (Outcome(kind="expired"), Expired),
        (Outcome(kind="legacy_done"), Done),
    ],
)
async def test_every_final_state_is_understood(
    xai: XaiEmulator, session: aiohttp.ClientSession, outcome: Outcome, expected: type
) -> None:
    """failed, respect_moderation=false, a moderation 400 on the poll, expired and the status-less legacy body."""
    outcome.generation_s = 0
    xai.outcomes.append(outcome)
    client = client_for(session, xai)
    result = await _poll_until_final(client, await client.submit(TEXT))
    assert isinstance(result, expected)
    if isinstance(result, Failed):
        assert (result.code, result.message) == ("service_unavailable", "overloaded")


@pytest.mark.parametrize(
    "body",
    [
        {"code": "invalid-argument", "error": "Duration too long for this model."},
        {"error": {"message": "Duration too long for this model.", "type": "invalid_request_error", "code": "x"}},
        "Duration too long for this model.",
    ],
)
async def test_flat_openai_style_and_plain_error_bodies_are_read(
    xai: XaiEmulator, session: aiohttp.ClientSession, body: object
) -> None:
    """Whatever the error shape, xAI's own words reach the person."""
    xai.fail_requests("POST", "generations", status=400, body=body)  # type: ignore[arg-type]
    with pytest.raises(XaiRejected, match="Duration too long for this model"):
        await client_for(session, xai).submit(TEXT)


async def test_a_wrong_key_never_shows_itself(
    xai: XaiEmulator, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """xAI answers 400 'Incorrect API key'; our words name the setting, never the key or xAI's echo of it."""
    caplog.set_level(logging.DEBUG)
    client = client_for(session, xai, key="xai-very-secret-wrong-key")
    with pytest.raises(XaiAuthError) as caught:
        await client.submit(TEXT)
    text = str(caught.value) + repr(client) + caplog.text
    assert "XAI_API_KEY" in str(caught.value)
    assert "xai-very-secret-wrong-key" not in text and "xa***ey" not in text


async def test_a_missing_key_header_is_an_auth_error(xai: XaiEmulator, session: aiohttp.ClientSession) -> None:
    """401 without credentials maps to the same admin-facing error."""
    xai.fail_requests("POST", "generations", status=401, body={"code": "unauthenticated", "error": "No key"})
    with pytest.raises(XaiAuthError):
        await client_for(session, xai).submit(TEXT)


@pytest.mark.parametrize("retry_after", ["0.2", None])
async def test_429_pauses_the_whole_budget_and_is_retried(
    xai: XaiEmulator, session: aiohttp.ClientSession, retry_after: str | None
) -> None:
    """A rate limit, with or without Retry-After, pauses everyone and then the submit goes through."""
    headers = {"Retry-After": retry_after} if retry_after else {}
    xai.fail_requests(
        "POST", "generations", status=429, body={"code": "resource-exhausted", "error": "Too many"}, headers=headers
    )
    budget = RequestBudget(60_000)
    request_id = await client_for(session, xai, budget=budget).submit(TEXT)
    assert request_id in xai.jobs and budget.granted == 2
    assert budget.paused_s >= (0.2 if retry_after else 0.008)


async def test_429_for_exhausted_credits_is_not_retried(xai: XaiEmulator, session: aiohttp.ClientSession) -> None:
    """Out of credits is for the admin to fix: exactly one request, a clear error."""
    xai.fail_requests(
        "POST",
        "generations",
        status=429,
        body={"code": "x", "error": "Your team has either used all available credits or reached its spending limit."},
        times=5,
    )
    with pytest.raises(XaiCreditsExhausted, match="credits"):
        await client_for(session, xai).submit(TEXT)
    assert len(xai.requests) == 1


async def test_persistent_429_ends_as_rate_limited(xai: XaiEmulator, session: aiohttp.ClientSession) -> None:
    """After the allowed retries a rate limit is reported, not retried forever."""
    xai.fail_requests("POST", "generations", status=429, body={"code": "x", "error": "Too many"}, times=50)
    with pytest.raises(XaiRateLimited):
        await client_for(session, xai).submit(TEXT)
    assert len(xai.requests) == 6


async def test_a_server_error_on_submit_is_not_retried(xai: XaiEmulator, session: aiohttp.ClientSession) -> None:
    """A 500 after sending might have started a billed job: one POST only."""
    xai.fail_requests("POST", "generations", status=500)
    with pytest.raises(XaiServerError):
        await client_for(session, xai).submit(TEXT)
    assert len(xai.requests) == 1


async def test_server_errors_timeouts_and_broken_json_on_polls_are_retried(
    xai: XaiEmulator, session: aiohttp.ClientSession
) -> None:
    """A 529, a hang past the timeout and a broken JSON body are retried; the third attempt succeeds."""
    xai.outcomes.append(Outcome(kind="never"))
    client = client_for(session, xai, request_timeout_s=0.5)
    request_id = await client.submit(TEXT)
    xai.fail_requests("GET", "/v1/videos/", status=529)
    xai.fail_requests("GET", "/v1/videos/", status=200, hang_s=1.0)
    assert isinstance(await client.poll(request_id), Pending)
    xai.fail_requests("GET", "/v1/videos/", status=200, body="{not json")
    assert isinstance(await client.poll(request_id), Pending)


async def test_poll_errors_that_persist_are_reported_as_transient(
    xai: XaiEmulator, session: aiohttp.ClientSession
) -> None:
    """After its retries the client raises, marked transient so the scheduler polls again later."""
    client = client_for(session, xai)
    request_id = await client.submit(TEXT)
    xai.fail_requests("GET", "/v1/videos/", status=200, body="{broken", times=3)
    with pytest.raises(XaiProtocolError) as caught:
        await client.poll(request_id)
    assert caught.value.transient
    xai.fail_requests("GET", "/v1/videos/", status=200, reset=True, times=10)  # aiohttp itself retries resets once
    with pytest.raises(XaiUnavailable):
        await client.poll(request_id)


async def test_an_unknown_job_is_rejected(xai: XaiEmulator, session: aiohttp.ClientSession) -> None:
    """404 on a poll: xAI no longer knows the job."""
    with pytest.raises(XaiRejected, match="no longer knows"):
        await client_for(session, xai).poll("no-such-id")


async def test_every_request_takes_a_budget_slot(xai: XaiEmulator, session: aiohttp.ClientSession) -> None:
    """Submits, polls and retries all go through the shared budget."""
    budget = RequestBudget(60_000)
    client = client_for(session, xai, budget=budget)
    request_id = await client.submit(TEXT)
    xai.fail_requests("GET", "/v1/videos/", status=503)
    await client.poll(request_id)
    await client.check_key()
    assert budget.granted == len(xai.requests) == 4


async def test_check_key_lists_the_models(xai: XaiEmulator, session: aiohttp.ClientSession) -> None:
    """The key check proves the key works and names the models it may use."""
    assert await client_for(session, xai).check_key() == [
        "grok-imagine-video",
        "grok-imagine-video-1.5",
        "grok-imagine-video-1.5-lite",
        "grok-imagine-video-1.5-preview",
    ]
    xai.listed_models = ("grok-imagine-video",)  # a key that may use only the classic model
    assert await client_for(session, xai).check_key() == ["grok-imagine-video"]
