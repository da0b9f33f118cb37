"""``LOG_FORMAT=json``: one JSON object per line, secrets masked as in the text format, the job id on job lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

from services.config import load_settings
from services.jobs.models import JobStatus
from services.scheduler.tasks import TaskRegistry
from tests.harness import BotRig
from tests.test_secrets_e2e import bot_logging  # the bot's own logging setup, at DEBUG, into a buffer

KEY = "xai-Secret-Key-0123456789abcdef"
TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.bot-token-secret-value"
INTERACTION_TOKEN = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDpzZWNyZXQ"


def lines_of(buffer: io.StringIO) -> list[dict[str, Any]]:
    """Every line of the log as JSON (fails on any line that is not one object)."""
    parsed = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert parsed and all(isinstance(line, dict) for line in parsed)
    return parsed


async def test_each_line_is_json_with_secrets_masked_and_the_job_id() -> None:
    settings = load_settings({"XAI_API_KEY": KEY, "DISCORD_TOKEN": TOKEN, "LOG_FORMAT": "json"})
    log = logging.getLogger("services.scheduler.tracking")
    with bot_logging(settings) as buffer:
        log.info("calling xAI with %s and Discord with %s", KEY, TOKEN)
        log.debug('POST /interactions/1/%s/callback with {"token": "%s"}', INTERACTION_TOKEN, INTERACTION_TOKEN)
        log.warning('headers {"Authorization": "Bearer abcdefghijklmnopqrstuvwxyz0123"} and a \\ "quoted" word')
        try:
            raise RuntimeError(f"xAI refused {KEY}")
        except RuntimeError:
            log.exception("Job 7: the submit broke")
        log.info("a line with a given job", extra={"job_id": 42})

        async def poll() -> None:
            log.info("asking xAI about it")

        tasks = TaskRegistry()  # as the scheduler starts each job's poll
        tasks.spawn(poll(), "poll-12")
        await asyncio.gather(*tasks)
        log.info("the loop went round, ünïcødé and all\nover two lines")
    text = buffer.getvalue()
    for secret in (KEY, TOKEN, INTERACTION_TOKEN, "abcdefghijklmnopqrstuvwxyz0123"):
        assert secret not in text
    lines = lines_of(buffer)
    assert [line["level"] for line in lines] == ["INFO", "DEBUG", "WARNING", "ERROR", "INFO", "INFO", "INFO"]
    assert {line["logger"] for line in lines} == {"services.scheduler.tracking"}
    assert all(line["time"].endswith("Z") and "T" in line["time"] for line in lines)
    assert lines[0]["message"] == "calling xAI with [redacted] and Discord with [redacted]"
    assert '"token": "[redacted]"' in lines[1]["message"]
    assert '"quoted"' in lines[2]["message"] and "[redacted]" in lines[2]["message"]
    assert lines[3]["job_id"] == 7 and "RuntimeError: xAI refused [redacted]" in lines[3]["exc_info"]
    assert lines[4]["job_id"] == 42 and lines[5]["job_id"] == 12
    assert "job_id" not in lines[0] and lines[6]["message"].endswith("over two lines")


async def test_the_real_bot_logs_a_whole_job_as_json(rig: BotRig) -> None:
    """Every line the bot and discord.py write while a /video is made parses, and the job's lines carry its id."""
    settings = load_settings(rig.environment(LOG_FORMAT="json"))
    with bot_logging(settings) as buffer:
        async with rig.running(LOG_FORMAT="json"):
            await rig.discord.slash("video", {"prompt": "a paper boat on a rainy street"})
            job = await rig.wait_until_terminal()
    assert job.status is JobStatus.DELIVERED
    lines = lines_of(buffer)
    assert {"discord.client", "services.scheduler.aftercare"} <= {line["logger"] for line in lines}
    delivered = [line for line in lines if line["message"].startswith(f"Job {job.id} delivered")]
    assert delivered and delivered[0]["job_id"] == job.id
    # The xAI client knows no job: its lines get the id from the scheduler's task that polls (or submits) the job.
    client_lines = [line for line in lines if line["logger"] == "services.xai.client"]
    assert client_lines and all(line.get("job_id") == job.id for line in client_lines)
    text = buffer.getvalue()
    assert rig.xai.api_key not in text and rig.discord.bot_token not in text
