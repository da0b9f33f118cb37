"""``python bot.py generate`` as a person runs it: a real process, the xAI emulator over loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.botprocess import ROOT, run_command
from tests.emulators.xai_emulator import Outcome, XaiEmulator
from tests.mediafactory import make_image, make_mp4


async def generate(xai: XaiEmulator, tmp_path: Path, *args: str, **env: str) -> tuple[int, str, str]:
    """Run the command; return (exit status, stdout, stderr)."""
    environment = {
        "XAI_API_KEY": xai.api_key,
        "XAI_BASE_URL": xai.base_url,
        "XAI_FIRST_POLL_SECONDS": "0.1",
        "XAI_MAX_POLL_INTERVAL_SECONDS": "0.5",
        "XAI_MAX_REQUESTS_PER_MINUTE": "6000",
        "DATABASE_PATH": str(tmp_path / "jobs.sqlite3"),
        **env,
    }
    return await run_command("generate", *args, env=environment, cwd=tmp_path)


def _one_clear_line(stderr: str) -> str:
    """The last line is the message, and nothing looks like a traceback."""
    assert "Traceback" not in stderr, stderr
    return stderr.strip().splitlines()[-1]


async def test_a_video_is_saved_and_the_job_recorded(xai: XaiEmulator, tmp_path: Path) -> None:
    """Exit 0, progress on the terminal, the MP4 at --out, the job in the database."""
    status, _, err = await generate(xai, tmp_path, "a fox in the snow", "--duration", "5", "--out", "fox.mp4")
    assert status == 0, err
    assert (tmp_path / "fox.mp4").read_bytes() == xai.output_video
    assert "generating" in err and "Saved fox.mp4" in _one_clear_line(err)
    assert (tmp_path / "jobs.sqlite3").is_file()
    assert xai.requests[0].body["duration"] == 5


async def test_an_image_file_is_animated(xai: XaiEmulator, tmp_path: Path) -> None:
    """--image PATH sends the picture as a data URI."""
    (tmp_path / "cat.webp").write_bytes(make_image("WEBP"))
    status, _, err = await generate(xai, tmp_path, "wave", "--image", "cat.webp", "--out", "cat.mp4")
    assert status == 0, err
    assert xai.requests[0].body["image"]["url"].startswith("data:image/webp;base64,")


async def test_a_video_file_is_edited(xai: XaiEmulator, tmp_path: Path) -> None:
    """--video PATH goes to /videos/edits."""
    (tmp_path / "in.mp4").write_bytes(make_mp4(2.0))
    status, _, err = await generate(xai, tmp_path, "make it sepia", "--video", "in.mp4")
    assert status == 0, err
    assert xai.requests[0].path == "/v1/videos/edits" and (tmp_path / "video.mp4").is_file()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["x", "--duration", "0"], "from 1 to 15 seconds"),
        (["x", "--duration", "16"], "from 1 to 15 seconds"),
        (["x", "--duration", "ten"], "whole number of seconds"),
        (["x", "--aspect-ratio", "21:9"], "aspect ratio must be one of"),
        (["x", "--resolution", "4k"], "resolution must be one of"),
        (["x", "--image", "missing.png"], "There is no file at missing.png"),
        (["x", "--image", "fake.png"], "not a PNG, JPEG or WebP"),
        (["x", "--video", "still.png"], "is an image, not a video"),
        (["x", "--video", "long.mp4"], "9.0 seconds long; xAI can edit at most 8.7"),
        (["x", "--video", "in.mp4", "--duration", "3"], "cannot be set"),
        (["   "], "Write a prompt"),
    ],
)
async def test_bad_input_is_refused_before_any_request(
    xai: XaiEmulator, tmp_path: Path, args: list[str], words: str
) -> None:
    """Exit 2 with one line saying what to fix; xAI never hears of it."""
    (tmp_path / "fake.png").write_bytes(b"GIF89a not really")
    (tmp_path / "still.png").write_bytes(make_image("PNG"))
    (tmp_path / "long.mp4").write_bytes(make_mp4(9.0, fps=4, audio=False))
    (tmp_path / "in.mp4").write_bytes(make_mp4(1.0))
    status, _, err = await generate(xai, tmp_path, *args)
    assert status == 2
    assert words in _one_clear_line(err)
    assert not xai.requests


@pytest.mark.parametrize(
    ("outcome", "exit_status", "words"),
    [
        (Outcome(kind="moderated"), 3, "moderation"),
        (Outcome(kind="failed", error_message="the model fell over"), 1, "the model fell over"),
        (Outcome(kind="expired"), 4, "expired"),
        (Outcome(kind="never"), 5, "did not finish this video within 1 second,"),
    ],
)
async def test_each_ending_has_its_exit_status_and_line(
    xai: XaiEmulator, tmp_path: Path, outcome: Outcome, exit_status: int, words: str
) -> None:
    """Moderated, failed (with xAI's message), expired and timed out each end with a clear line."""
    xai.outcomes.append(outcome)
    status, _, err = await generate(xai, tmp_path, "a river", XAI_JOB_TIMEOUT_SECONDS="1")
    assert status == exit_status
    assert words in _one_clear_line(err)


async def test_a_bad_key_exits_with_a_clear_line(xai: XaiEmulator, tmp_path: Path) -> None:
    """xAI refusing the key ends with exit 6 and a line naming XAI_API_KEY, without the key."""
    status, out, err = await generate(xai, tmp_path, "a river", XAI_API_KEY="xai-wrong-secret")
    assert status == 6
    line = _one_clear_line(err)
    assert "XAI_API_KEY" in line and "xai-wrong-secret" not in out + err


async def test_a_missing_key_names_the_variable(xai: XaiEmulator, tmp_path: Path) -> None:
    """Without XAI_API_KEY the command stops at once, saying where to get one."""
    status, _, err = await generate(xai, tmp_path, "a river", XAI_API_KEY="")
    assert status == 78
    assert "XAI_API_KEY is not set" in _one_clear_line(err) and not xai.requests


def _submits(xai: XaiEmulator) -> list[str]:
    return [r.path for r in xai.requests if r.method == "POST" and r.path.startswith("/v1/videos/")]


async def _interrupt_generate(xai: XaiEmulator, tmp_path: Path, sig: signal.Signals) -> tuple[int, str]:
    """Run `generate`, wait until its submit has reached xAI, then send ``sig``; return (status, stderr)."""
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "ENV_FILE": "none",
        "XAI_API_KEY": xai.api_key,
        "XAI_BASE_URL": xai.base_url,
        "XAI_MAX_REQUESTS_PER_MINUTE": "6000",
        "DATABASE_PATH": str(tmp_path / "jobs.sqlite3"),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bot.py"),
        "generate",
        "a river",
        cwd=tmp_path,
        env=environment,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while not _submits(xai):
            assert asyncio.get_running_loop().time() < deadline, "the submit never arrived"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # the answer (a 429, or nothing yet) is in
        process.send_signal(sig)
        _, err = await asyncio.wait_for(process.communicate(), 15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, err.decode()


async def test_ctrl_c_between_429_retries_says_it_costs_nothing(xai: XaiEmulator, tmp_path: Path) -> None:
    """A submit refused with a 429 never reached xAI's queue: Ctrl-C then cancels it, and the line says it is free."""
    xai.fail_requests(
        "POST",
        r"/v1/videos/generations$",
        status=429,
        body={"code": "resource-exhausted", "error": "Too many requests"},
        headers={"Retry-After": "30"},
    )
    status, err = await _interrupt_generate(xai, tmp_path, signal.SIGINT)
    assert status == 130
    line = _one_clear_line(err)
    assert "before it was sent to xAI, so it costs nothing" in line and "may still charge" not in line
    assert len(_submits(xai)) == 1


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
async def test_an_interrupt_after_the_submit_says_xai_may_charge(
    xai: XaiEmulator, tmp_path: Path, sig: signal.Signals
) -> None:
    """Interrupted while the submit is on the wire: cancelled, and the line says xAI may still charge (130)."""
    xai.submit_delay_s = 3  # on the wire when the signal comes; answered soon after, so nothing lingers
    status, err = await _interrupt_generate(xai, tmp_path, sig)
    assert status == 130
    assert "had already reached xAI, which may still charge for it" in _one_clear_line(err)
