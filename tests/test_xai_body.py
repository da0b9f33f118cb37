"""A submit's body is streamed (a 50 MiB edit input is base64-encoded slice by slice as it is sent, so the
event loop never stalls on it) and is still exactly the bytes of ``json.dumps`` of the official body."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from services.config import Secret
from services.jobs.models import MediaInput, VideoOptions
from services.xai.bodies import EditRequest, GenerationRequest, encoded_submission, submission
from services.xai.client import XaiClient
from tests.loopback import serving

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

prompts = st.text(alphabet=st.characters(codec="utf-8"), max_size=200)
mimes = st.sampled_from(["video/mp4", "image/png", "image/jpeg", 'odd"/type\\'])


def _request(kind: str, prompt: str, media: MediaInput) -> GenerationRequest | EditRequest:
    if kind == "edit":
        return EditRequest(prompt, video=media, user="0f1e2d3c")
    if kind == "image":
        options = VideoOptions(duration=5, aspect_ratio="16:9", resolution="1080p")
        return GenerationRequest(prompt, options, image=media, model="grok-imagine-video-1.5", user="a1b2")
    return GenerationRequest(prompt, VideoOptions(aspect_ratio="16:9"), model="grok-imagine-video-1.5-lite")


@PROPERTY
@given(prompt=prompts, data=st.binary(max_size=3000), mime=mimes, kind=st.sampled_from(["edit", "image", "text"]))
@example(prompt='media-0 "x"', data=b"", mime="video/mp4", kind="edit")
def test_the_streamed_body_is_exactly_json_dumps_of_the_body(prompt: str, data: bytes, mime: str, kind: str) -> None:
    """The pieces join to json.dumps(submission(...)) byte for byte, and the declared size is their length."""
    request = _request(kind, prompt, MediaInput(data, mime, "f"))
    path, body = encoded_submission(request)
    expected_path, expected = submission(request)
    sent = b"".join(body.pieces())
    assert path == expected_path and sent == json.dumps(expected).encode() and body.size == len(sent)


def test_a_large_input_is_made_in_small_pieces_that_decode_to_the_input() -> None:
    """A multi-MiB input becomes base64 pieces of about half a megabyte each, made one at a time."""
    data = os.urandom(5 * 1024 * 1024 + 7)
    _, body = encoded_submission(EditRequest("p", video=MediaInput(data, "video/mp4", "a.mp4")))
    pieces = body.pieces()
    first, second = next(pieces), next(pieces)  # a generator: nothing past what was asked for exists yet
    rest = list(pieces)
    assert len(rest) > 8 and max(len(p) for p in [second, *rest]) <= 600_000
    uri = json.loads(b"".join([first, second, *rest]))["video"]["url"]
    assert uri.startswith("data:video/mp4;base64,") and base64.b64decode(uri.split(",", 1)[1]) == data


@pytest.fixture
async def sink() -> AsyncIterator[tuple[str, list[tuple[bytes, dict[str, str]]]]]:
    """A loopback endpoint that records each request's raw body and headers, and answers with a job id."""
    seen: list[tuple[bytes, dict[str, str]]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append((await request.read(), dict(request.headers)))
        return web.json_response({"request_id": "job-1"})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/videos/{kind}", record)
    async with serving(app) as host:
        yield f"{host}/v1", seen


@pytest.mark.parametrize("kind", ["edit", "image", "text"])
async def test_the_wire_carries_the_same_bytes_as_aiohttps_json(
    sink: tuple[str, list[tuple[bytes, dict[str, str]]]], kind: str
) -> None:
    """What the client sends equals what aiohttp's json= would have sent: same bytes, Content-Type, Content-Length."""
    base_url, seen = sink
    request = _request(kind, 'sépia "noir" 🎬', MediaInput(os.urandom(3 * 1024 * 1024 + 1), "video/mp4", "a.mp4"))
    async with aiohttp.ClientSession() as session:
        client = XaiClient(session, api_key=Secret("xai-test-key-0123456789"), base_url=base_url)
        assert await client.submit(request) == "job-1"
        path, body = submission(request)
        await session.post(base_url + path, json=body)
    (mine, my_headers), (theirs, their_headers) = seen
    assert mine == theirs
    assert my_headers["Content-Type"] == their_headers["Content-Type"] == "application/json"
    assert my_headers["Content-Length"] == their_headers["Content-Length"] == str(len(mine))
    assert "Transfer-Encoding" not in my_headers


def test_each_body_names_its_own_model_and_a_hashed_user_and_no_aspect_ratio_with_an_image() -> None:
    """The model is the request's; ``user`` is sent only when known; an image's shape wins over an aspect ratio."""
    image = MediaInput(b"\x89PNG", "image/png", "a.png")
    _, with_image = submission(_request("image", "p", image))
    _, text = submission(_request("text", "p", image))
    _, edit = submission(_request("edit", "p", MediaInput(b"mp4", "video/mp4", "a.mp4")))
    assert with_image["model"] == "grok-imagine-video-1.5" and with_image["user"] == "a1b2"
    assert "aspect_ratio" not in with_image and with_image["resolution"] == "1080p"
    assert text["model"] == "grok-imagine-video-1.5-lite" and text["aspect_ratio"] == "16:9" and "user" not in text
    assert edit["model"] == "grok-imagine-video" and edit["user"] == "0f1e2d3c"
