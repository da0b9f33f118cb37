"""The xAI client against the emulator over real HTTP: every kind of answer xAI gives."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from services.config import Secret
from services.jobs.models import MediaInput, VideoOptions
from services.xai.answers import FAILURE_WORDS, Done, Expired, Failed, Moderated, Pending
from services.xai.bodies import EditRequest, GenerationRequest
from services.xai.budget import RequestBudget
from services.xai.client import XaiClient
from services.xai.errors import (
    XaiAuthError,
    XaiCreditsExhausted,
    XaiError,
    XaiProtocolError,
    XaiRateLimited,
    XaiRejected,
    XaiServerError,
    XaiUnavailable,
)
from tests.emulators.xai_emulator import Outcome, XaiEmulator

TEXT = GenerationRequest("a cat surfing", VideoOptions(duration=3, aspect_ratio="9:16", resolution="720p"))
sleeps: list[float] = []


async def _no_sleep(seconds: float) -> None:
    sleeps.append(seconds)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def _client(
    session: aiohttp.ClientSession, xai: XaiEmulator, *, key: str | None = None, budget: RequestBudget | None = None
) -> XaiClient:
    return XaiClient(
        session,
        api_key=Secret(key or xai.api_key),
        base_url=xai.base_url,
        budget=budget or RequestBudget(60_000),
        request_timeout_s=0.5,
        rate_limit_backoff_s=0.01,
        sleep=_no_sleep,
    )


async def _poll_until_final(client: XaiClient, request_id: str) -> object:
    for _ in range(200):
        result = await client.poll(request_id)
        if not isinstance(result, Pending):
            return result
    raise AssertionError("never finished")


async def test_text_submit_uses_the_official_shape(xai: XaiEmulator, session: aiohttp.ClientSession) -> None:
    """Model, prompt and options go to /videos/generations; unset options are omitted."""
    await _client(session, xai).submit(TEXT)
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
    await _client(session, xai).submit(GenerationRequest("move", VideoOptions(), image=image))
    body = xai.requests[-1].body
    assert body["image"]["url"].startswith("data:image/png;base64,") and "image_url" not in body


async def test_edits_go_to_their_own_endpoint_without_options(xai: XaiEmulator, session: aiohttp.ClientSession) -> None:
    """POST /videos/edits carries only model, prompt and video."""
    clip = MediaInput(b"\x00\x00\x00\x18ftypmp42", "video/mp4", "a.mp4")
    await _client(session, xai).submit(EditRequest("sepia", video=clip))
    request = xai.requests[-1]
    assert request.path == "/v1/videos/edits" and set(request.body) == {"model", "prompt", "video"}


@pytest.mark.parametrize("style", ["empty", "json"])
async def test_pending_answers_202_with_or_without_a_body(
    xai: XaiEmulator, session: aiohttp.ClientSession, style: str
) -> None:
    """An empty 202 and a 202 with progress both mean pending."""
    xai.outcomes.append(Outcome(kind="never", pending_body=style))  # type: ignore[arg-type]
    client = _client(session, xai)
    result = await client.poll(await client.submit(TEXT))
    assert isinstance(result, Pending)
    assert result.progress == (None if style == "empty" else 5)


async def test_done_carries_the_url_duration_and_cost(xai: XaiEmulator, session: aiohttp.ClientSession) -> None:
    """A finished job gives the video's address, its length and xAI's cost in ticks."""
    xai.outcomes.append(Outcome(generation_s=0))
    client = _client(session, xai)
    result = await _poll_until_final(client, await client.submit(TEXT))
    assert isinstance(result, Done) and result.url.split("?")[0].endswith(".mp4")
    assert result.duration_s == 3 and result.cost_usd_ticks == 3_000_000_000


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
    client = _client(session, xai)
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
        await _client(session, xai).submit(TEXT)


async def test_a_wrong_key_never_shows_itself(
    xai: XaiEmulator, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """xAI answers 400 'Incorrect API key'; our words name the setting, never the key or xAI's echo of it."""
    caplog.set_level(logging.DEBUG)
    client = _client(session, xai, key="xai-very-secret-wrong-key")
    with pytest.raises(XaiAuthError) as caught:
        await client.submit(TEXT)
    text = str(caught.value) + repr(client) + caplog.text
    assert "XAI_API_KEY" in str(caught.value)
    assert "xai-very-secret-wrong-key" not in text and "xa***ey" not in text


async def test_a_missing_key_header_is_an_auth_error(xai: XaiEmulator, session: aiohttp.ClientSession) -> None:
    """401 without credentials maps to the same admin-facing error."""
    xai.fail_requests("POST", "generations", status=401, body={"code": "unauthenticated", "error": "No key"})
    with pytest.raises(XaiAuthError):
        await _client(session, xai).submit(TEXT)


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
    request_id = await _client(session, xai, budget=budget).submit(TEXT)
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
        await _client(session, xai).submit(TEXT)
    assert len(xai.requests) == 1


async def test_persistent_429_ends_as_rate_limited(xai: XaiEmulator, session: aiohttp.ClientSession) -> None:
    """After the allowed retries a rate limit is reported, not retried forever."""
    xai.fail_requests("POST", "generations", status=429, body={"code": "x", "error": "Too many"}, times=50)
    with pytest.raises(XaiRateLimited):
        await _client(session, xai).submit(TEXT)
    assert len(xai.requests) == 6


async def test_a_server_error_on_submit_is_not_retried(xai: XaiEmulator, session: aiohttp.ClientSession) -> None:
    """A 500 after sending might have started a billed job: one POST only."""
    xai.fail_requests("POST", "generations", status=500)
    with pytest.raises(XaiServerError):
        await _client(session, xai).submit(TEXT)
    assert len(xai.requests) == 1


async def test_server_errors_timeouts_and_broken_json_on_polls_are_retried(
    xai: XaiEmulator, session: aiohttp.ClientSession
) -> None:
    """A 529, a hang past the timeout and a broken JSON body are retried; the third attempt succeeds."""
    xai.outcomes.append(Outcome(kind="never"))
    client = _client(session, xai)
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
    client = _client(session, xai)
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
        await _client(session, xai).poll("no-such-id")


async def test_every_request_takes_a_budget_slot(xai: XaiEmulator, session: aiohttp.ClientSession) -> None:
    """Submits, polls and retries all go through the shared budget."""
    budget = RequestBudget(60_000)
    client = _client(session, xai, budget=budget)
    request_id = await client.submit(TEXT)
    xai.fail_requests("GET", "/v1/videos/", status=503)
    await client.poll(request_id)
    await client.check_key()
    assert budget.granted == len(xai.requests) == 4


async def test_check_key_lists_the_models(xai: XaiEmulator, session: aiohttp.ClientSession) -> None:
    """The key check proves the key works and names the models it may use."""
    assert await _client(session, xai).check_key() == ["grok-imagine-video"]


# -- strange answers are outcomes, and every sentence is true -----------------------------------


async def _running_job(session: aiohttp.ClientSession, xai: XaiEmulator) -> tuple[XaiClient, str]:
    xai.outcomes.append(Outcome(kind="never"))
    client = _client(session, xai)
    return client, await client.submit(TEXT)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, '{"status": "pending", "progress": NaN}', Pending(None)),
        (202, '{"status": "pending", "progress": 1e999}', Pending(None)),
        (202, '{"progress": -Infinity}', Pending(None)),
        (200, '{"status": "pending", "progress": -3}', Pending(0)),
        (200, '{"status": "pending", "progress": 250}', Pending(100)),
        (200, '{"status": "pending", "progress": 45.7}', Pending(45)),
        (200, '{"status": "pending", "progress": "45"}', Pending(None)),
        (200, '{"status": "pending", "progress": true}', Pending(None)),
        (200, '{"status": "pending", "progress": {"value": 5}}', Pending(None)),
        (200, '{"status": "Pending", "progress": 7}', Pending(7)),
        (202, "null", Pending(None)),
        (200, "null", Pending(None)),
        (200, '{"status": "failed", "error": "boom"}', Failed("internal_error", FAILURE_WORDS["internal_error"], None)),
        (
            200,
            '{"status": "done", "video": {"url": 5, "duration": NaN}, "usage": {"cost_in_usd_ticks": -7}}',
            Done("", None, None),
        ),
        (
            200,
            '{"status": "done", "video": {"url": "https://vidgen.x.ai/v.mp4", "duration": 1e999},'
            ' "usage": {"cost_in_usd_ticks": "3000000000"}}',
            Done("https://vidgen.x.ai/v.mp4", None, 3_000_000_000),
        ),
    ],
)
async def test_strange_poll_answers_are_sane_outcomes(
    xai: XaiEmulator, session: aiohttp.ClientSession, status: int, body: str, expected: object
) -> None:
    """NaN, infinite, negative, too large, string, bool and dict progress, odd costs and URLs: clamped or None."""
    client, request_id = await _running_job(session, xai)
    xai.fail_requests("GET", "/v1/videos/", status=status, body=body)
    assert await client.poll(request_id) == expected


@pytest.mark.parametrize("body", ["[1, 2]", '"done"', "42"])
async def test_a_200_that_is_not_an_object_is_a_transient_protocol_error(
    xai: XaiEmulator, session: aiohttp.ClientSession, body: str
) -> None:
    """A JSON array, string or number where an object belongs: the scheduler is told to ask again later."""
    client, request_id = await _running_job(session, xai)
    xai.fail_requests("GET", "/v1/videos/", status=200, body=body)
    with pytest.raises(XaiProtocolError) as caught:
        await client.poll(request_id)
    assert caught.value.transient


async def test_an_unknown_status_is_still_pending_and_logged_once(
    xai: XaiEmulator, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """A status xAI may add later keeps the job waiting (it times out honestly), logged once, not once a poll."""
    client, request_id = await _running_job(session, xai)
    xai.fail_requests("GET", "/v1/videos/", status=200, body={"status": "warming-up-test", "progress": 12}, times=3)
    results = [await client.poll(request_id) for _ in range(3)]
    assert results == [Pending(12)] * 3
    assert caplog.text.count("warming-up-test") == 1


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Content blocked by moderation.", Moderated),
        ("Generated video rejected by content moderation.", Moderated),
        ("Duration 20s is not supported.", Failed),
    ],
)
async def test_failed_with_invalid_argument_is_moderation_only_when_it_says_so(
    xai: XaiEmulator, session: aiohttp.ClientSession, message: str, expected: type
) -> None:
    """The moderation form xAI's docs now list (failed + invalid_argument), told apart from other bad arguments."""
    client, request_id = await _running_job(session, xai)
    body = {
        "status": "failed",
        "error": {"code": "invalid_argument", "message": message},
        "usage": {"cost_in_usd_ticks": 500_000_000},
    }
    xai.fail_requests("GET", "/v1/videos/", status=200, body=body)
    result = await client.poll(request_id)
    assert isinstance(result, expected) and isinstance(result, Moderated | Failed)
    assert result.cost_usd_ticks == 500_000_000


@pytest.mark.parametrize(
    ("body", "request_id"),
    [
        ({"request_id": 12345}, "12345"),
        ({"request_id": "  abc-1  "}, "abc-1"),
        ({"request_id": ""}, None),
        ({"request_id": "a b"}, None),
        ({"request_id": "x" * 500}, None),
        ({"request_id": {"id": "abc"}}, None),
        ({"request_id": True}, None),
        ({}, None),
        ('[{"request_id": "abc"}]', None),
        ("null", None),
    ],
)
async def test_a_submit_answer_needs_a_usable_job_id(
    xai: XaiEmulator, session: aiohttp.ClientSession, body: object, request_id: str | None
) -> None:
    """A number is taken as text; an empty, spaced, huge or structured id is refused, saying xAI may bill."""
    xai.fail_requests("POST", "generations", status=200, body=body)  # type: ignore[arg-type]
    client = _client(session, xai)
    if request_id is not None:
        assert await client.submit(TEXT) == request_id
        return
    with pytest.raises(XaiProtocolError) as caught:
        await client.submit(TEXT)
    assert "cannot tell whether xAI started the video" in str(caught.value)
    assert "may charge" in str(caught.value) and "will try again" not in str(caught.value)


@pytest.mark.parametrize(
    "fault",
    [{"status": 500}, {"status": 503}, {"status": 200, "hang_s": 1.0}, {"status": 200, "reset": True}],
)
async def test_a_submit_that_may_have_reached_xai_says_so_and_is_not_resent(
    xai: XaiEmulator, session: aiohttp.ClientSession, fault: dict[str, object]
) -> None:
    """A 5xx, a timeout or a broken connection after sending: one POST, and words saying xAI may have it (and bill)."""
    xai.fail_requests("POST", "generations", **fault)  # type: ignore[arg-type]
    with pytest.raises(XaiError) as caught:
        await _client(session, xai).submit(TEXT)
    text = str(caught.value)
    assert "cannot tell whether xAI started the video" in text and "not sent again" in text
    assert "will try again" not in text
    assert len([r for r in xai.requests if r.method == "POST"]) == 1


async def test_an_unreachable_xai_says_nothing_was_sent_and_promises_nothing(session: aiohttp.ClientSession) -> None:
    """Connection refused after the retries: the words say nothing was sent, and no retry is promised."""
    client = XaiClient(session, api_key=Secret("xai-key-0123456789"), base_url="http://127.0.0.1:1/v1", sleep=_no_sleep)
    with pytest.raises(XaiUnavailable) as caught:
        await client.submit(TEXT)
    assert "nothing was sent" in str(caught.value) and "will" not in str(caught.value)


async def test_rate_limit_words_promise_nothing(xai: XaiEmulator, session: aiohttp.ClientSession) -> None:
    """The rate-limit sentence shows in `check` too, where no job waits: it states the fact, nothing the bot will do."""
    xai.fail_requests("GET", "video-generation-models", status=429, body={"error": "Too many"}, times=50)
    with pytest.raises(XaiRateLimited) as caught:
        await _client(session, xai).check_key()
    assert "too many" in str(caught.value).lower() and "will" not in str(caught.value)


async def test_the_key_is_never_sent_where_a_redirect_points(xai: XaiEmulator, session: aiohttp.ClientSession) -> None:
    """A redirect from xAI's address is not followed (it would carry the key elsewhere); the admin is told why."""
    elsewhere: list[str] = []

    async def record(request: web.Request) -> web.Response:
        elsewhere.append(request.headers.get("Authorization", ""))
        return web.json_response({"models": []})

    app = web.Application()
    app.router.add_get("/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    target = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/video-generation-models"
    try:
        xai.fail_requests("GET", "video-generation-models", status=307, headers={"Location": target}, body="")
        with pytest.raises(XaiRejected, match="XAI_BASE_URL"):
            await _client(session, xai).check_key()
    finally:
        await runner.cleanup()
    assert elsewhere == []


@pytest.mark.parametrize(
    "body", ["[" * 100_000 + "]" * 100_000, '{"status": "pending", "pad": "' + "x" * (2 * 1024 * 1024) + '"}']
)
async def test_a_huge_or_deeply_nested_answer_is_unreadable_not_a_crash(
    xai: XaiEmulator, session: aiohttp.ClientSession, body: str
) -> None:
    """A 2 MB answer is not read whole, and 100,000 nested brackets are not recursed into: XaiProtocolError."""
    client, request_id = await _running_job(session, xai)
    xai.fail_requests("GET", "/v1/videos/", status=200, body=body, times=3)
    with pytest.raises(XaiProtocolError):
        await client.poll(request_id)


async def test_an_error_that_echoes_the_key_never_shows_it(xai: XaiEmulator, session: aiohttp.ClientSession) -> None:
    """A proxy repeating the Authorization header in its error body: its words reach the person, the key does not."""
    body = {"error": f"Bad request. Headers: Authorization: Bearer {xai.api_key}"}
    xai.fail_requests("POST", "generations", status=422, body=body)
    with pytest.raises(XaiRejected) as caught:
        await _client(session, xai).submit(TEXT)
    assert "Bad request" in str(caught.value) and xai.api_key not in str(caught.value)


@pytest.mark.parametrize(
    ("body", "models"),
    [
        ({"models": 5}, []),
        ({"models": "grok"}, []),
        ({"data": [{"id": {"x": 1}}, {"id": ""}, "grok", {"id": "grok-imagine-video"}]}, ["grok-imagine-video"]),
    ],
)
async def test_the_model_list_is_read_leniently(
    xai: XaiEmulator, session: aiohttp.ClientSession, body: dict[str, object], models: list[str]
) -> None:
    """Whatever shape the model list has, check_key returns the string ids in it and never raises TypeError."""
    xai.fail_requests("GET", "video-generation-models", status=200, body=body)
    assert await _client(session, xai).check_key() == models
