"""No secret leaves the bot: the real bot at DEBUG, many kinds of job, then a scan of everything it wrote.

The secrets are the xAI key, the Discord token and every interaction token the emulator minted. The scan
covers the log (captured through the handler and formatter ``bot.setup_logging`` installs), every message,
embed, component and file the Discord emulator holds (each version), every body the bot sent to either
emulator, and the raw bytes of the SQLite file with its -wal and -shm.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from bot import setup_logging
from services.config import Settings, load_settings
from services.jobs.models import ErrorCode, JobStatus
from services.xai.client import XaiClient
from services.xai.errors import XaiAuthError
from tests.botprocess import HERMETIC
from tests.emulators.discord_models import READ_MESSAGE_HISTORY, VIEW_CHANNEL
from tests.emulators.xai_emulator import Outcome
from tests.harness import BotRig
from tests.mediafactory import make_image, make_mp4

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def bot_logging(settings: Settings) -> Iterator[io.StringIO]:
    """The bot's own logging setup at DEBUG, writing into a buffer; undone afterwards."""
    root = logging.getLogger()
    saved_level, saved_formatters = root.level, {h: h.formatter for h in root.handlers}
    http = logging.getLogger("discord.http")
    saved_http = http.level
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    setup_logging("DEBUG", settings, handler=handler)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_level)
        http.setLevel(saved_http)
        for other, formatter in saved_formatters.items():
            other.setFormatter(formatter)


def _store_bytes(database: Path) -> dict[str, bytes]:
    files = [database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")]
    return {str(path): path.read_bytes() for path in files if path.exists()}


def _everything_written(rig: BotRig, log_text: str, store: dict[str, bytes]) -> dict[str, bytes]:
    """Every place the bot writes to, by name, as bytes."""
    out: dict[str, bytes] = {"log": log_text.encode()}
    for message in rig.discord.messages.values():
        texts = [message.content, json.dumps(message.embeds), json.dumps(message.components)]
        texts += [json.dumps(message.allowed_mentions), str(message.nonce)]
        texts += [repr(version) for version in message.versions]
        out[f"message {message.id}"] = "\n".join(texts).encode()
        for attachment in message.attachments:
            out[f"message {message.id} file {attachment.filename}"] = attachment.filename.encode() + attachment.data
    for index, request in enumerate(rig.discord.requests):
        # The path of an interaction callback or webhook *is* its token, by Discord's design: bodies only.
        out[f"discord request {index} {request.route}"] = json.dumps(request.json).encode() + b"".join(
            f.filename.encode() + f.data for f in request.files
        )
    for index, xai_request in enumerate(rig.xai.requests):
        out[f"xai request {index} {xai_request.path}"] = (xai_request.path + json.dumps(xai_request.body)).encode()
    out.update(store)
    for path in rig.database_path.parent.rglob("*"):
        if path.is_file():
            out[f"file {path.name}"] = path.read_bytes()
    return out


async def test_no_secret_reaches_logs_messages_requests_or_the_store(rig: BotRig) -> None:
    """Text, image and edit jobs, xAI failure, moderation, bad input and a DM fallback, all at DEBUG: nothing leaks."""
    emu, xai = rig.discord, rig.xai
    xai.prompt_outcomes.update(
        {
            "gpu": Outcome(kind="failed", error_message="GPU on fire"),
            "forbidden": Outcome(kind="moderated"),
            "late": Outcome(generation_s=4.0),
        }
    )
    settings = load_settings(rig.environment())
    closed = emu.add_channel(emu.guild_id, "closing-soon")
    with bot_logging(settings) as log:
        async with rig.running():
            picture = emu.add_attachment(make_image("PNG"), "photo.png", "image/png")
            clip = emu.add_attachment(make_mp4(1.0), "clip.mp4", "video/mp4")
            liar = emu.add_attachment(make_image("PNG"), "movie.mp4", "video/mp4")
            await emu.slash("video", {"prompt": "a lighthouse at night", "duration": 3})
            await emu.slash("video", {"prompt": "make the waves move", "image": picture})
            await emu.slash("video", {"prompt": "make it black and white", "video": clip})
            await emu.slash("video", {"prompt": "gpu stress test"})
            await emu.slash("video", {"prompt": "something forbidden"})
            bad = await emu.slash("video", {"prompt": "edit this", "video": liar})
            assert "image, not a video" in await rig.wait_for_answer(bad, "❌", timeout=60)
            await emu.wait_for(lambda: sum(1 for r in xai.requests if r.method == "POST") == 5, timeout=60)
            # The channel closes while the last job runs, and its interaction token dies: only a DM is left.
            late = await emu.slash(
                "video", {"prompt": "late delivery"}, channel_id=closed, created_at=time.time() - 15 * 60 + 2
            )
            await emu.wait_for(lambda: late.ack_type is not None, timeout=30)
            emu.set_bot_permissions(closed, VIEW_CHANNEL | READ_MESSAGE_HISTORY)
            assert rig.bot is not None
            store = rig.bot.runtime.store
            jobs = []
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                jobs = await store.jobs.of_user(emu.user_id, limit=10)
                if len(jobs) == 6 and all(job.status.is_terminal for job in jobs):
                    break
                await asyncio.sleep(0.1)
            written_while_running = _store_bytes(rig.database_path)
        written_after = _store_bytes(rig.database_path)

    by_prompt = {job.prompt: job for job in jobs}
    assert by_prompt["late delivery"].delivery_method == "dm", by_prompt["late delivery"]
    assert by_prompt["gpu stress test"].error_code == ErrorCode.XAI_FAILED
    assert by_prompt["something forbidden"].status is JobStatus.MODERATED
    assert sum(1 for job in jobs if job.status is JobStatus.DELIVERED) == 4

    log_text = log.getvalue()
    # The log really is DEBUG-level and really carried token-bearing lines (now masked).
    assert "WebSocket Event" in log_text and "/webhooks/" in log_text and "[redacted]" in log_text
    interaction_tokens = [interaction.token for interaction in emu.interactions.values()]
    assert len(interaction_tokens) >= 7
    secrets = {"xAI key": xai.api_key, "Discord token": emu.bot_token}
    secrets.update({f"interaction token {i}": token for i, token in enumerate(interaction_tokens)})
    written = _everything_written(rig, log_text, {**written_while_running, **written_after})
    leaks = [
        f"{secret_name} in {place}"
        for place, data in written.items()
        for secret_name, secret in secrets.items()
        if secret.encode() in data
    ]
    assert not leaks, leaks


def test_settings_never_show_their_secrets() -> None:
    """repr and str of the settings (and of each secret) hide the key and the token."""
    settings = load_settings({"XAI_API_KEY": "xai-supersecret-key-123", "DISCORD_TOKEN": "discord-supersecret-token"})
    for text in (repr(settings), str(settings), repr(settings.xai), repr(settings.discord), f"{settings.xai.api_key}"):
        assert "supersecret" not in text


async def test_a_rejected_key_is_explained_without_the_key(rig: BotRig) -> None:
    """The exception for a wrong key says what to do and does not contain the key."""
    settings = load_settings(rig.environment(XAI_API_KEY="xai-wrong-but-secret-key-42"), need_discord=False)
    async with aiohttp.ClientSession() as session:
        client = XaiClient(session, api_key=settings.xai.api_key, base_url=settings.xai.base_url, max_retries=0)
        with pytest.raises(XaiAuthError) as caught:
            await client.check_key()
    assert "XAI_API_KEY" in str(caught.value)
    assert "wrong-but-secret" not in str(caught.value) and "wrong-but-secret" not in repr(caught.value.args)


async def test_the_real_process_at_debug_writes_no_secret(rig: BotRig) -> None:
    """`python bot.py` at LOG_LEVEL=DEBUG, as an admin runs it: a /video, then SIGTERM; its stderr holds no secret."""
    emu = rig.discord
    env = {"PATH": os.environ.get("PATH", ""), **HERMETIC, **rig.environment(LOG_LEVEL="DEBUG")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bot.py"),
        cwd=rig.tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    stderr = asyncio.create_task(process.stderr.read())  # drained all along: DEBUG output would fill the pipe
    try:
        await emu.wait_for(lambda: emu.guild_id in emu.commands, timeout=60)
        await emu.wait_for(lambda: any(entry["event"] == "identify" for entry in emu.gateway_log), timeout=60)
        await emu.slash("video", {"prompt": "a lantern in fog"})
        await rig.delivered_video(timeout=60)
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
    log = (await stderr).decode(errors="replace")
    assert process.returncode == 0, log[-2000:]
    assert "WebSocket Event" in log and "[redacted]" in log and "Traceback" not in log
    secrets = [rig.xai.api_key, emu.bot_token, *(i.token for i in emu.interactions.values())]
    assert not [secret for secret in secrets if secret in log]
