"""Hostile input through /video end to end: prompts that try to ping or format, files that lie or are broken,
and addresses that point somewhere else. Each gets a clear answer; nothing unfit reaches xAI."""

from __future__ import annotations

import struct
import zlib
from typing import Any

from services.jobs.models import ErrorCode, JobStatus
from tests.harness import BotRig
from tests.mediafactory import make_image, make_mp4

MIB = 1024 * 1024


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's shape)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


async def test_a_prompt_full_of_markup_and_mentions_is_echoed_inert(rig: BotRig) -> None:
    """@everyone, @here, role and user mentions, markdown and zero-width characters: only the requester is pinged,
    the echo shows the text literally, and xAI gets the prompt without the invisible characters."""
    emu = rig.discord
    role = emu.add_role(emu.guild_id, "mods")
    prompt = (
        f"@everyone @here <@&{role}> <@{emu.other_user_id}> **bold** __under__ ~~gone~~ ||spoiler|| "
        "`code` > quote # title [link](https://evil.example) a\u200bcat\u200d on a\u2060 roof\ufeff"
    )
    async with rig.running():
        await emu.slash("video", {"prompt": prompt})
        posted = await rig.delivered_video(timeout=60)
    assert not posted.mention_everyone and not posted.mention_roles and posted.mentions == [emu.user_id]
    echo = posted.embeds[0]["description"]
    for raw in ("@everyone", "@here", f"<@&{role}>", f"<@{emu.other_user_id}>", "**bold**", "[link](", "||spoiler||"):
        assert raw not in echo, raw
    assert "\u200b" not in echo.replace("@\u200b", "")  # the only zero-width spaces are the ones breaking mentions
    sent = next(r.body for r in rig.xai.requests if r.method == "POST")["prompt"]
    assert "acat on a roof" in sent and not any(ch in sent for ch in "\u200b\u200d\u2060\ufeff")


async def test_an_over_long_prompt_is_refused_before_xai(rig: BotRig) -> None:
    """Even if Discord let 6,000 characters through (a stale command definition), the bot says what the limit is."""
    emu = rig.discord
    async with rig.running():
        video = next(c for c in emu.commands[emu.guild_id] if c["name"] == "video")
        prompt_option = next(o for o in video["options"] if o["name"] == "prompt")
        prompt_option["max_length"] = 6000  # what an older sync might have left behind
        inter = await emu.slash("video", {"prompt": "a cat " * 1000})
        answer = await rig.wait_for_answer(inter, "❌", timeout=60)
    assert "5,999 characters" in answer and "limit is 1,000" in answer and "Shorten it" in answer
    assert not rig.xai.requests


async def test_a_prompt_of_only_invisible_characters_is_refused(rig: BotRig) -> None:
    """Zero-width characters alone are no prompt at all."""
    async with rig.running():
        inter = await rig.discord.slash("video", {"prompt": "\u200b\u200b\u2060\ufeff"})
        answer = await rig.wait_for_answer(inter, "❌", timeout=60)
    assert "Write a prompt" in answer and not rig.xai.requests


async def test_lying_broken_and_oversized_files_each_get_a_clear_answer(rig: BotRig) -> None:
    """Every bad file is refused with words that say what to do; nothing is sent to xAI; no traceback shows."""
    emu = rig.discord
    png, jpeg, clip = make_image("PNG"), make_image("JPEG"), make_mp4(2.0)
    cases: dict[str, tuple[str, bytes, str, str, str]] = {
        # name: (option, data, filename, content type, words the answer must contain)
        "png named mp4": ("video", png, "movie.mp4", "video/mp4", "image, not a video"),
        "mp4 named png": ("image", clip, "photo.png", "image/png", "not a PNG, JPEG or WebP image"),
        "truncated png": ("image", png[: len(png) * 9 // 10], "cut.png", "image/png", "cut off"),
        "truncated jpeg": ("image", jpeg[: len(jpeg) - 4], "cut.jpg", "image/jpeg", "cut off"),
        "truncated mp4": ("video", clip[: len(clip) * 95 // 100], "cut.mp4", "video/mp4", "cut off"),
        "empty image": ("image", b"", "empty.png", "image/png", "empty"),
        "empty video": ("video", b"", "empty.mp4", "video/mp4", "empty"),
        "huge in pixels": ("image", _png_claiming(60000, 60000), "bomb.png", "image/png", "60000x60000 pixels"),
        "huge in bytes": ("image", png + b"\0" * (11 * MIB), "big.png", "image/png", "the limit is 10 MiB"),
        "nine seconds": ("video", make_mp4(9.0, fps=6, audio=False), "long.mp4", "video/mp4", "Trim it"),
    }
    async with rig.running():
        asked: dict[str, Any] = {}
        for name, (option, data, filename, content_type, _) in cases.items():
            attachment = emu.add_attachment(data, filename, content_type)
            asked[name] = await emu.slash("video", {"prompt": f"try {name}", option: attachment})
        answers = {name: await rig.wait_for_answer(inter, "❌", timeout=60) for name, inter in asked.items()}
    wrong = {
        name: answers[name]
        for name, (*_, words) in cases.items()
        if words not in answers[name] or "Traceback" in answers[name] or "attach" not in answers[name].lower()
    }
    assert not wrong, wrong
    assert not rig.xai.requests
    big = next(a for a in emu.world.attachments.values() if a.filename == "big.png")
    assert not emu.requests_matching("GET", rf"/attachments/{big.id}/"), "an over-size file was downloaded"


async def test_a_file_bigger_than_discord_said_is_refused_by_its_bytes(rig: BotRig) -> None:
    """The declared size is only a first check: what actually arrives is measured too."""
    emu = rig.discord
    async with rig.running():
        attachment = emu.add_attachment(make_image("PNG") + b"\0" * (11 * MIB), "liar.png", "image/png")
        attachment["size"] = 2048
        inter = await emu.slash("video", {"prompt": "animate", "image": attachment})
        answer = await rig.wait_for_answer(inter, "❌", timeout=60)
    assert "over the 10 MiB limit" in answer and not rig.xai.requests


async def test_an_attachment_that_is_not_on_discord_is_never_fetched(rig: BotRig) -> None:
    """An attachment whose address points to another host is refused before any download."""
    emu = rig.discord
    async with rig.running():
        attachment = emu.add_attachment(make_image("PNG"), "photo.png", "image/png")
        for key in ("url", "proxy_url"):
            attachment[key] = attachment[key].replace("127.0.0.1", "localhost")
        inter = await emu.slash("video", {"prompt": "animate", "image": attachment})
        answer = await rig.wait_for_answer(inter, "❌", timeout=60)
    assert "not stored on Discord" in answer and "Upload it to Discord" in answer
    assert not emu.requests_matching("GET", r"/attachments/") and not rig.xai.requests


async def test_a_video_address_on_an_unexpected_host_is_not_downloaded(rig: BotRig) -> None:
    """xAI's answer naming a host outside XAI_DOWNLOAD_HOSTS fails the job with a clear line; nothing is fetched."""
    xai = rig.xai
    xai.video_host = xai.video_host.replace("127.0.0.1", "localhost")  # same server, a host the bot was not told of
    async with rig.running():
        inter = await rig.discord.slash("video", {"prompt": "a kite over a beach"})
        job = await rig.wait_until_terminal(timeout=60)
        answer = await rig.wait_for_answer(inter, "❌", timeout=60)
    assert job.status is JobStatus.FAILED and job.error_code == ErrorCode.DOWNLOAD_FAILED
    assert "could not download it" in answer and "localhost are not allowed" in answer
    assert all(emulated.first_download_at is None for emulated in xai.jobs.values())


async def test_a_configured_download_host_is_used(rig: BotRig) -> None:
    """Naming that host in XAI_DOWNLOAD_HOSTS is how an admin allows it (over https only, so here: refused for http)."""
    xai = rig.xai
    xai.video_host = xai.video_host.replace("127.0.0.1", "localhost")
    async with rig.running(XAI_DOWNLOAD_HOSTS="localhost"):
        inter = await rig.discord.slash("video", {"prompt": "a kite over a beach"})
        job = await rig.wait_until_terminal(timeout=60)
        answer = await rig.wait_for_answer(inter, "❌", timeout=60)
    assert job.error_code == ErrorCode.DOWNLOAD_FAILED and "must use https" in answer
