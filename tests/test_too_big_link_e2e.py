"""A video too big to post still reaches people: xAI's temporary link, with its expiry, beside the explanation.

The video here is real and cannot be shrunk: 15 MiB of noise (over the 10 MiB a server without boosts takes)
whose sound is FLAC at 192 kHz, which the AAC encoder of the shrinker does not take.
"""

from __future__ import annotations

import functools
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from services.jobs.models import JobStatus
from services.media.hosts import AllowedHosts, shareable_link
from tests.harness import BotRig
from tests.test_extend_e2e import buttons
from tests.test_limits_e2e import make_video
from tests.test_show_e2e import show

DAY = 86400


@functools.cache
def unshrinkable_mp4() -> bytes:
    """1.5 s of 640x360 noise (lossless H.264, about 15 MiB) with FLAC sound at 192 kHz."""
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.mp4"
        with av.open(str(path), "w", format="mp4") as container:
            video = container.add_stream("libx264", rate=24)
            video.width, video.height, video.pix_fmt = 640, 360, "yuv420p"
            video.options = {"crf": "0", "preset": "ultrafast"}
            sound = container.add_stream("flac", rate=192000)
            for index in range(36):
                frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (360, 640, 3), dtype=np.uint8), format="rgb24")
                frame.pts, frame.time_base = index, Fraction(1, 24)
                container.mux(video.encode(frame))
            container.mux(video.encode(None))
            total = int(1.5 * 192000)
            for start in range(0, total, 4096):
                count = min(4096, total - start)
                tone = (np.sin(np.arange(start, start + count) / 50) * 3000).astype(np.int16).reshape(1, -1)
                chunk = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
                chunk.sample_rate, chunk.pts = 192000, start
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
        return path.read_bytes()


async def test_a_video_too_big_to_shrink_is_posted_as_xais_link_with_its_expiry(rig: BotRig) -> None:
    rig.xai.output_video = unshrinkable_mp4()
    emu = rig.discord
    async with rig.running():
        job_id = await make_video(rig, "a storm of static")
        job = await rig.wait_until_terminal(job_id)
        posted = await emu.wait_for_message(lambda m: f"xai-video-{job.request_id}.mp4" in m.content)
        again = await show(rig, job_id, user_id=emu.other_user_id)
    assert job.status is JobStatus.DELIVERED and job.delivered_message_id == posted.id
    assert job.finished_at is not None and f"<t:{int(job.finished_at + DAY)}:R>" in posted.content
    assert "too large to post here" in posted.content and "could not be shrunk to fit" in posted.content
    assert "Watch or download it from xAI instead: http://" in posted.content and not posted.attachments
    assert {f"gv:again:{job_id}", f"gv:extend:{job_id}", f"gv:delete:{job_id}"} <= set(buttons(posted))
    assert f"<@{emu.user_id}>" in posted.content and "too big to upload here, so I posted xAI's link" in again


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://vidgen.x.ai/xai-vidgen-bucket/xai-video-1.mp4", True),
        ("https://user:secret@vidgen.x.ai/xai-video-1.mp4", False),
        ("https://vidgen.x.ai/xai-video-1.mp4?X-Amz-Signature=abc", False),
        ("https://vidgen.x.ai/xai-video-1.mp4?token=abc", False),
        ("https://vidgen.x.ai/xai-video-1.mp4?api_key=abc", False),
        ("https://evil.example/xai-video-1.mp4", False),
        ("http://vidgen.x.ai/xai-video-1.mp4", False),
        ("not a url", False),
    ],
)
def test_only_a_link_on_xais_hosts_without_credentials_is_shown(url: str, shown: bool) -> None:
    assert (shareable_link(url, AllowedHosts(["vidgen.x.ai"])) == url) is shown
