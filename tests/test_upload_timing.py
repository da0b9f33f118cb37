"""Sending a big edit is timed by its size; only xAI's answer has XAI_REQUEST_TIMEOUT_SECONDS.

A 50 MiB clip is ~70 MB as base64: on a modest uplink it takes minutes to go out, and a total time limit cut it
off mid-body, calling it "may have reached xAI" although a request whose body never arrived whole started
nothing. The emulator here takes bodies in at a chosen rate (or stops reading); the real scheduler and client
send edits to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.jobs.charging import started_nothing
from services.jobs.models import ErrorCode, JobRequest, JobStatus, MediaInput, Mode, Origin, VideoOptions
from services.xai.bodies import EditRequest
from services.xai.errors import XaiUnavailable
from services.xai.gate import SubmitGate
from tests.scheduler_rig import Rig, open_rig

EDITS = r"^/v1/videos/edits$"
MIB = 1024 * 1024
BIG = 9 * MIB  # 12 MB as base64: more than the kernel's socket buffers can take in while the link stalls


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with open_rig(tmp_path) as rig:
        yield rig


def _clip(size: int) -> MediaInput:
    return MediaInput(data=b"\x00" * size, mime_type="video/mp4", filename="clip.mp4")


def _edit(size: int) -> JobRequest:
    return JobRequest(
        mode=Mode.EDIT,
        prompt="turn it into a watercolour",
        options=VideoOptions(),
        origin=Origin(guild_id=1, channel_id=2, user_id=1),
        media=_clip(size),
    )


async def test_a_body_slower_to_send_than_the_answer_limit_still_goes_through(rig: Rig) -> None:
    """2 MB of base64 at 1 MiB/s takes 2 s; the answer limit is 1 s: the edit is sent whole and delivered."""
    rig.xai.upload_bytes_per_s = MIB
    job = await rig.run_job(_edit(3 * MIB // 2), rig.scheduler(request_timeout_s=1.0))
    assert job.status is JobStatus.DELIVERED, f"{job.error_code}: {job.error_message}"
    assert rig.xai.body_bytes_received >= 2 * MIB and len(rig.xai.submits()) == 1


async def test_a_body_that_never_goes_out_whole_started_nothing_and_is_handed_back(rig: Rig) -> None:
    """The link stops taking bytes a quarter of the way in: given up at the body's deadline, nothing is charged,
    and the words say xAI started nothing."""
    rig.xai.upload_stall_after = 512 * 1024
    scheduler = rig.scheduler(request_timeout_s=0.3, min_upload_bytes_per_s=8 * MIB)
    job = await rig.run_job(_edit(BIG), scheduler)
    assert (job.status, job.error_code) == (JobStatus.FAILED, ErrorCode.XAI_UNAVAILABLE)
    assert "started nothing" in (job.error_message or "") and "may charge" not in (job.error_message or "")
    assert not job.charged and job.charged_at is None
    assert await rig.store.usage.counted_count(1, 1, 0) == 0  # handed back
    assert rig.xai.body_bytes_received < MIB and not rig.xai.jobs


async def test_the_client_says_a_cut_off_body_reached_nothing(rig: Rig) -> None:
    """The same at the client: the gate falls back to "not sent", and its hook hears that xAI took nothing."""
    rig.xai.upload_stall_after = 256 * 1024
    heard: list[str] = []

    async def on_wire() -> None:
        heard.append("on the wire")

    async def on_turned_away() -> None:
        heard.append("turned away")

    gate = SubmitGate(on_wire=on_wire, on_turned_away=on_turned_away)
    client = rig.scheduler(request_timeout_s=0.3, min_upload_bytes_per_s=8 * MIB).client
    with pytest.raises(XaiUnavailable) as caught:
        await client.submit(EditRequest(prompt="watercolour", video=_clip(BIG)), gate=gate)
    assert started_nothing(caught.value, sent=gate.sent)
    assert heard == ["on the wire", "turned away"]


async def test_a_whole_body_without_an_answer_is_still_uncertain(rig: Rig) -> None:
    """Sent whole, then xAI never answers within the answer limit: it may have started the video, so it counts."""
    rig.xai.fail_requests("POST", EDITS, hang_s=3)
    job = await rig.run_job(_edit(64 * 1024), rig.scheduler(request_timeout_s=0.5))
    assert job.status is JobStatus.FAILED and job.charged
    assert "did not answer in time" in (job.error_message or "") and "may charge" in (job.error_message or "")
