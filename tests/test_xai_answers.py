"""The xAI client against the emulator over real HTTP: strange answers are outcomes, and every sentence it
writes promises only what happens (moved from test_xai_client.py to keep each module under 400 lines)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from services.config import Secret
from services.xai.answers import FAILURE_WORDS, Done, Failed, Moderated, Pending
from services.xai.client import XaiClient
from services.xai.errors import XaiError, XaiProtocolError, XaiRateLimited, XaiRejected, XaiUnavailable
from tests.emulators.xai_emulator import Outcome, XaiEmulator
from tests.loopback import serving
from tests.xai_rig import TEXT, client_for, no_sleep


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


# -- strange answers are outcomes, and every sentence is true -----------------------------------


async def _running_job(session: aiohttp.ClientSession, xai: XaiEmulator) -> tuple[XaiClient, str]:
    xai.outcomes.append(Outcome(kind="never"))
    client = client_for(session, xai)
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
    client = client_for(session, xai)
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
        await client_for(session, xai, request_timeout_s=0.5).submit(TEXT)  # the hang outlasts it
    text = str(caught.value)
    assert "cannot tell whether xAI started the video" in text and "not sent again" in text
    assert "will try again" not in text
    assert len([r for r in xai.requests if r.method == "POST"]) == 1


async def test_an_unreachable_xai_says_nothing_was_sent_and_promises_nothing(session: aiohttp.ClientSession) -> None:
    """Connection refused after the retries: the words say nothing was sent, and no retry is promised."""
    client = XaiClient(session, api_key=Secret("xai-key-0123456789"), base_url="http://127.0.0.1:1/v1", sleep=no_sleep)
    with pytest.raises(XaiUnavailable) as caught:
        await client.submit(TEXT)
    assert "nothing was sent" in str(caught.value) and "will" not in str(caught.value)


async def test_rate_limit_words_promise_nothing(xai: XaiEmulator, session: aiohttp.ClientSession) -> None:
    """The rate-limit sentence shows in `check` too, where no job waits: it states the fact, nothing the bot will do."""
    xai.fail_requests("GET", "video-generation-models", status=429, body={"error": "Too many"}, times=50)
    with pytest.raises(XaiRateLimited) as caught:
        await client_for(session, xai).check_key()
    assert "too many" in str(caught.value).lower() and "will" not in str(caught.value)


async def test_the_key_is_never_sent_where_a_redirect_points(xai: XaiEmulator, session: aiohttp.ClientSession) -> None:
    """A redirect from xAI's address is not followed (it would carry the key elsewhere); the admin is told why."""
    elsewhere: list[str] = []

    async def record(request: web.Request) -> web.Response:
        elsewhere.append(request.headers.get("Authorization", ""))
        return web.json_response({"models": []})

    app = web.Application()
    app.router.add_get("/{tail:.*}", record)
    async with serving(app) as host:
        target = f"{host}/v1/video-generation-models"
        xai.fail_requests("GET", "video-generation-models", status=307, headers={"Location": target}, body="")
        with pytest.raises(XaiRejected, match="XAI_BASE_URL"):
            await client_for(session, xai).check_key()
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
        await client_for(session, xai).submit(TEXT)
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
    assert await client_for(session, xai).check_key() == models
