"""``python bot.py generate`` as a person runs it: a real process, the xAI emulator over loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.botprocess import run_command
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
