"""``python bot.py generate --extend FILE``, and the emulator's extensions route refusing what xAI refuses."""

from __future__ import annotations

import base64
from pathlib import Path

import aiohttp
import pytest

from services.media import probing
from tests.emulators.xai_emulator import XaiEmulator
from tests.mediafactory import make_image, make_mp4
from tests.test_terminal import _one_clear_line, generate


async def test_generate_extend_continues_a_clip_and_saves_the_longer_one(xai: XaiEmulator, tmp_path: Path) -> None:
    """--extend PATH --duration 3: the classic model, the added seconds only, and a clip 3 s longer."""
    (tmp_path / "in.mp4").write_bytes(make_mp4(4.0))
    status, _, err = await generate(xai, tmp_path, "--extend", "in.mp4", "--duration", "3", "--out", "longer.mp4")
    assert status == 0, err
    (request,) = xai.requests[:1]
    assert request.path == "/v1/videos/extensions" and request.body["duration"] == 3
    assert request.body["model"] == "grok-imagine-video" and "prompt" not in request.body
    info = await probing.probe_video(tmp_path / "longer.mp4")
    assert abs(info.duration_s - 7.0) < 0.2 and "accepted (an extension)" in err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--extend", "short.mp4"], "at least 2 seconds"),
        (["--extend", "long.mp4"], "xAI can extend at most 15 seconds"),
        (["--extend", "still.png"], "is an image, not a video"),
        (["--extend", "ok.mp4", "--duration", "11"], "An extension adds 2 to 10 seconds; you asked for 11."),
        (["--extend", "ok.mp4", "--resolution", "720p"], "keeps the video's shape and resolution"),
        (["x", "--extend", "ok.mp4", "--video", "ok.mp4"], "not allowed with argument"),
    ],
)
async def test_bad_extend_input_is_refused_before_any_request(
    xai: XaiEmulator, tmp_path: Path, args: list[str], words: str
) -> None:
    (tmp_path / "short.mp4").write_bytes(make_mp4(1.0))
    (tmp_path / "long.mp4").write_bytes(make_mp4(16.0, fps=4, audio=False))
    (tmp_path / "ok.mp4").write_bytes(make_mp4(3.0))
    (tmp_path / "still.png").write_bytes(make_image("PNG"))
    status, _, err = await generate(xai, tmp_path, *args)
    assert status == 2
    assert words in (_one_clear_line(err) if "not allowed" not in words else err)
    assert not xai.requests


async def _post(xai: XaiEmulator, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {xai.api_key}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{xai.base_url}/videos/extensions", json=body, headers=headers) as answer,
    ):
        return answer.status, await answer.json()


def _clip(seconds: float) -> dict[str, str]:
    return {"url": "data:video/mp4;base64," + base64.b64encode(make_mp4(seconds)).decode()}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"model": "grok-imagine-video-1.5", "video": _clip(3.0), "duration": 4}, "not supported for model"),
        ({"model": "grok-imagine-video-1.5-lite", "video": _clip(3.0)}, "not supported for model"),
        ({"model": "grok-imagine-video", "video": _clip(1.0)}, "between 2 and 15 seconds long, got 1.0s"),
        ({"model": "grok-imagine-video", "video": _clip(16.0)}, "between 2 and 15 seconds long, got 16.0s"),
        ({"model": "grok-imagine-video", "video": _clip(3.0), "duration": 11}, "between 2 and 10 seconds"),
        ({"model": "grok-imagine-video", "video": _clip(3.0), "resolution": "720p"}, "Unsupported fields"),
    ],
)
async def test_the_emulator_refuses_extensions_as_xai_does(
    xai: XaiEmulator, body: dict[str, object], words: str
) -> None:
    status, answer = await _post(xai, body)
    assert status == 400 and words in str(answer["error"]) and not xai.jobs


async def test_the_emulator_extends_by_the_default_six_seconds(xai: XaiEmulator) -> None:
    status, answer = await _post(xai, {"model": "grok-imagine-video", "video": _clip(3.0)})
    assert status == 200
    job = xai.jobs[str(answer["request_id"])]
    assert job.duration == 9 and job.video is not None
