"""``python bot.py generate --model``: the terminal picks a model like /video does, checks it first, and sends no
``user`` (the key owner's own jobs)."""

from __future__ import annotations

from pathlib import Path

from tests.botprocess import run_command
from tests.emulators.xai_emulator import XaiEmulator
from tests.harness import BotRig
from tests.test_terminal import _one_clear_line, generate


async def test_generate_model_sends_to_that_model_and_says_its_price(xai: XaiEmulator, tmp_path: Path) -> None:
    args = ("a fox", "--duration", "4", "--resolution", "1080p", "--model", "grok-imagine-video-1.5")
    status, _, err = await generate(xai, tmp_path, *args)
    assert status == 0, err
    body = xai.submits()[0].body
    assert (body["model"], body["resolution"]) == ("grok-imagine-video-1.5", "1080p") and "user" not in body
    assert "accepted (text to video) on grok-imagine-video-1.5, about $1.00" in err


async def test_generate_defaults_to_the_first_offered_model(xai: XaiEmulator, tmp_path: Path) -> None:
    status, _, err = await generate(xai, tmp_path, "a fox", "--duration", "2", XAI_MODELS="grok-imagine-video")
    assert status == 0, err
    assert xai.submits()[0].body["model"] == "grok-imagine-video" and "about $0.10" in err


async def test_generate_refuses_what_the_model_cannot_do_before_any_request(xai: XaiEmulator, tmp_path: Path) -> None:
    status, _, err = await generate(xai, tmp_path, "a fox", "--resolution", "1080p", "--model", "grok-imagine-video")
    assert status == 2
    assert _one_clear_line(err) == (
        "error: 1080p is not offered for text-to-video on grok-imagine-video; it offers 480p or 720p. "
        "1080p runs on grok-imagine-video-1.5 or grok-imagine-video-1.5-lite."
    )
    assert not xai.submits()
    unknown_status, _, unknown = await generate(xai, tmp_path, "a fox", "--model", "grok-imagine-video-9")
    assert unknown_status == 2 and "grok-imagine-video-9 is not offered here" in _one_clear_line(unknown)


async def test_check_names_an_offered_model_the_key_may_not_use(rig: BotRig) -> None:
    """``python bot.py check`` asks xAI which models the key may use, and names each offered one it may not."""
    rig.xai.listed_models = ("grok-imagine-video", "grok-imagine-video-1.5-lite")
    status, out, _ = await run_command("check", env=rig.environment(), cwd=rig.tmp_path)
    assert status != 0
    assert "the key works, but it may not use grok-imagine-video-1.5 (in XAI_MODELS" in out
    _, good, _ = await run_command(
        "check", env=rig.environment(XAI_MODELS="grok-imagine-video-1.5-lite"), cwd=rig.tmp_path
    )
    assert "xAI: the key works and may use grok-imagine-video-1.5-lite" in good
