"""Hostile answers from xAI through the real scheduler, client and store, against the emulator over HTTP.

Whatever xAI (or something in its place) answers (NaN or negative progress, unknown statuses, bodies that
are not objects, video addresses with bad ports, schemes or hosts, garbage costs and texts), every job still
ends: delivered, or a terminal status with a message a person can read. No poll or download task dies, and
no job is left in DOWNLOADING or RUNNING.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from services.jobs.models import ErrorCode, Job, JobStatus
from tests.emulators.xai_emulator import Outcome
from tests.mediafactory import make_mp4
from tests.scheduler_rig import Rig, open_rig, text_request, unlimited_service

POLLS = r"^/v1/videos/[^/]+$"


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with open_rig(tmp_path) as rig:
        yield rig


@pytest.fixture
async def video_host() -> AsyncIterator[str]:
    """A second loopback host serving a real MP4, for done answers whose other fields are hostile."""
    clip = make_mp4(1.0)

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=clip, content_type="video/mp4")

    app = web.Application()
    app.router.add_get("/{name}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/clip.mp4"
    await runner.cleanup()


def _no_crashes(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing in the scheduler died: no crashed task, no failed loop step."""
    crashed = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not crashed, crashed


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, '{"status": "pending", "progress": NaN}'),
        (200, '{"status": "pending", "progress": 1e999}'),
        (202, '{"status": "pending", "progress": -Infinity}'),
        (200, '{"status": "pending", "progress": -40}'),
        (200, '{"status": "pending", "progress": "45%"}'),
        (200, '{"status": "pending", "progress": {"done": 1}}'),
        (200, '{"status": "queued", "progress": 7}'),
        (200, '{"status": ["done"]}'),
        (200, "[1, 2, 3]"),
        (200, '"pending"'),
        (202, "null"),
        (200, "{not json"),
    ],
)
async def test_odd_pending_answers_never_derail_a_job(
    rig: Rig, caplog: pytest.LogCaptureFixture, status: int, body: str
) -> None:
    """Two hostile poll answers in a row, then xAI behaves: the job is delivered and no task crashed."""
    caplog.set_level(logging.WARNING)
    rig.xai.fail_requests("GET", POLLS, status=status, body=body, times=2)
    job = await rig.run_job(text_request())
    assert job.status is JobStatus.DELIVERED
    assert rig.xai.pending_faults() == 0
    _no_crashes(caplog)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://127.0.0.1:99999/x.mp4", "not a valid URL"),
        ("http://127.0.0.1:0/x.mp4", "invalid port"),
        ("ftp://127.0.0.1/x.mp4", "not an http(s) URL"),
        ("/xai-vidgen-bucket/x.mp4", "not an http(s) URL"),
        ("https://vidgen.x.ai/a b.mp4", "spaces"),
        ("https://vid%20gen.x.ai/x.mp4", "invalid host"),
        ("http://[::1/x.mp4", "not a valid URL"),
        ("https://vidgen.x.ai/" + "a" * 9000, "too long"),
        (5, "missing"),
        ({"href": "https://vidgen.x.ai/x.mp4"}, "missing"),
        ("", "missing"),
    ],
)
async def test_an_unusable_video_address_fails_the_job_in_words(
    rig: Rig, caplog: pytest.LogCaptureFixture, url: object, words: str
) -> None:
    """A done answer whose video URL cannot be fetched ends the job FAILED, saying why; never stuck.

    The bot asks xAI once for a fresh address after a refused one, so xAI gives the bad address twice: once
    would make the test depend on whether the emulated generation had finished by the second poll."""
    caplog.set_level(logging.WARNING)
    body = {"status": "done", "progress": 100, "video": {"url": url, "duration": 3, "respect_moderation": True}}
    rig.xai.fail_requests("GET", POLLS, status=200, body=body, times=2)
    job = await rig.run_job(text_request())
    assert (job.status, job.error_code) == (JobStatus.FAILED, ErrorCode.DOWNLOAD_FAILED)
    assert "could not download it" in (job.error_message or "") and words in (job.error_message or "")
    assert rig.xai.pending_faults() == 0  # the fresh address was asked for, and was as bad
    _no_crashes(caplog)


async def test_garbage_cost_and_duration_still_deliver_and_count_the_estimate(
    rig: Rig, video_host: str, caplog: pytest.LogCaptureFixture
) -> None:
    """NaN duration and a negative cost from xAI: the video is delivered, and no garbage cost is stored."""
    caplog.set_level(logging.WARNING)
    body = (
        '{"status": "done", "video": {"url": "' + video_host + '", "duration": NaN, "respect_moderation": true},'
        ' "usage": {"cost_in_usd_ticks": -5e300}}'
    )
    rig.xai.fail_requests("GET", POLLS, status=200, body=body)
    job = await rig.run_job(text_request())
    assert job.status is JobStatus.DELIVERED and job.cost_usd_ticks is None
    _no_crashes(caplog)


@pytest.mark.parametrize(
    ("error", "status", "code", "words"),
    [
        (
            {"code": "invalid_argument", "message": "Content blocked by moderation."},
            JobStatus.MODERATED,
            ErrorCode.MODERATED,
            "may still charge",
        ),
        ({"code": 404, "message": ["nope"]}, JobStatus.FAILED, ErrorCode.XAI_FAILED, "xAI could not make the video"),
        ("broken", JobStatus.FAILED, ErrorCode.XAI_FAILED, "internal error"),
        (
            {"code": "internal_error", "message": "bad\ud800\x00\u202e news " + "z" * 5000},
            JobStatus.FAILED,
            ErrorCode.XAI_FAILED,
            "bad news",
        ),
    ],
)
async def test_odd_failures_end_the_job_with_a_clean_message(
    rig: Rig, error: object, status: JobStatus, code: ErrorCode, words: str
) -> None:
    """Moderation in the failed form, and failures whose code or message is garbage, lone surrogates included."""
    body = {"status": "failed", "error": error, "usage": {"cost_in_usd_ticks": 500_000_000}}
    rig.xai.fail_requests("GET", POLLS, status=200, body=body)
    job = await rig.run_job(text_request())
    message = job.error_message or ""
    assert (job.status, job.error_code) == (status, code) and words in message
    assert len(message) < 500 and message.isprintable()
    assert job.cost_usd_ticks == 500_000_000  # xAI's bill for a failed or moderated job is kept


async def test_an_unknown_status_forever_times_out_honestly(rig: Rig) -> None:
    """xAI answering a status nobody knows, poll after poll: the job waits and then times out with its request id."""
    rig.xai.outcomes.append(Outcome(kind="never"))
    rig.xai.fail_requests("GET", POLLS, status=200, body={"status": "reticulating"}, times=1000)
    job = await rig.run_job(text_request(), rig.scheduler(timeout_s=0.6))
    assert (job.status, job.error_code) == (JobStatus.FAILED, ErrorCode.TIMEOUT)
    assert job.request_id and job.request_id in (job.error_message or "")


@pytest.mark.parametrize("body", [{"request_id": ""}, {"request_id": {"id": 1}}, "[]", "null"])
async def test_a_submit_answer_without_a_usable_id_fails_the_job_saying_xai_may_bill(rig: Rig, body: object) -> None:
    """xAI took the request but its answer has no usable id: the job fails, sent once, with words about the charge."""
    rig.xai.fail_requests("POST", "generations", status=200, body=body)  # type: ignore[arg-type]
    job = await rig.run_job(text_request())
    assert job.status is JobStatus.FAILED and "cannot tell whether xAI started the video" in (job.error_message or "")
    assert len([r for r in rig.xai.requests if r.method == "POST"]) == 1


HOSTILE_MIX: list[tuple[int, str]] = [
    (200, '{"status": "pending", "progress": NaN}'),
    (200, '{"status": "pending", "progress": -1e308}'),
    (202, "null"),
    (200, "[]"),
    (200, '{"status": 17}'),
    (200, '{"status": "done", "video": {"url": "http://127.0.0.1:99999/v.mp4"}}'),
    (200, '{"status": "done", "video": {"url": "gopher://x/v.mp4"}}'),
    (200, '{"status": "done", "video": {"url": null}, "usage": {"cost_in_usd_ticks": "NaN"}}'),
    (200, '{"status": "failed", "error": {"code": "invalid_argument", "message": "Blocked by moderation"}}'),
    (200, '{"status": "failed", "error": null}'),
    (200, '{"status": "expired"}'),
    (200, '{"status": "DONE", "video": {"url": "", "respect_moderation": false}}'),
    (200, '{"status": "pending", "progress": 1e999}'),
    (200, '"\\ud800"'),
]


async def test_a_burst_of_jobs_under_a_stream_of_hostile_answers_all_end(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """Twelve jobs at once while polls get a shuffled stream of hostile answers: every job ends, none is stuck."""
    caplog.set_level(logging.WARNING)
    rng = random.Random(10)
    for status, body in rng.sample(HOSTILE_MIX * 2, len(HOSTILE_MIX) * 2):
        rig.xai.fail_requests("GET", POLLS, status=status, body=body)
    scheduler = rig.scheduler()
    await scheduler.start()
    service = unlimited_service(rig.store, scheduler)
    ids = [(await service.accept(text_request(f"hostile {n}", user=n))).job.id for n in range(12)]
    ended: list[Job] = list(await asyncio.gather(*(rig.ended(job_id, timeout=30) for job_id in ids)))
    assert all(job.status.is_terminal for job in ended)
    assert all(job.error_message for job in ended if job.status is not JobStatus.DELIVERED)
    assert not await rig.store.jobs.active()
    assert len({job.status for job in ended}) >= 3  # the hostile answers shaped the endings
    _no_crashes(caplog)
