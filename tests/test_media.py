"""Media checks with real files made by PyAV, and downloads over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import io
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import av
import pytest
from aiohttp import web

from services.media import decoding, downloading, probing, shrinking
from services.media.hosts import AllowedHosts
from tests.loopback import serving
from tests.mediafactory import make_image, make_mp4


@pytest.mark.parametrize(("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")])
async def test_images_are_recognised_by_their_content(fmt: str, mime: str) -> None:
    """PNG, JPEG and WebP pass with their real type and size."""
    info = await probing.check_image(make_image(fmt, width=32, height=24))
    assert (info.mime_type, info.width, info.height) == (mime, 32, 24)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"GIF89a....", "not a PNG, JPEG or WebP"),
        (make_image("PNG")[:40], "damaged or cut off"),
    ],
)
async def test_bad_images_are_refused_in_words(data: bytes, words: str) -> None:
    """Empty, foreign and truncated images each get a sentence saying what to do."""
    with pytest.raises(probing.MediaError, match=words):
        await probing.check_image(data)


async def test_a_decompression_bomb_is_refused_from_its_header() -> None:
    """A PNG claiming 100000x100000 pixels is refused before any decoding."""
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    with pytest.raises(probing.MediaError, match="100000x100000 pixels"):
        await probing.check_image(png)


async def test_an_image_over_the_byte_cap_is_refused() -> None:
    """The size limit is stated in the message."""
    with pytest.raises(probing.MediaError, match="the limit is"):
        await probing.check_image(make_image("PNG"), max_bytes=10)


async def test_a_short_mp4_is_accepted_for_editing() -> None:
    """A 2-second H.264 MP4 passes with its duration."""
    info = await probing.check_edit_video(make_mp4(2.0))
    assert info.video_codec == "h264" and 1.9 <= info.duration_s <= 2.1


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (make_mp4(9.0, fps=4, audio=False), "at most 8.7 seconds"),
        (make_image("PNG"), "is an image, not a video"),
        (b"", "empty"),
        (b"\x00\x00\x00\x18ftypmp42 but then nothing", "not a video I can read"),
        (make_mp4(2.0)[:3000], "cut off"),
    ],
)
async def test_bad_edit_inputs_are_refused_in_words(data: bytes, words: str) -> None:
    """Too long, an image in disguise, empty, garbage and truncated videos are refused with a reason."""
    with pytest.raises(probing.MediaError, match=words):
        await probing.check_edit_video(data)


async def test_a_non_mp4_container_is_refused(tmp_path: Path) -> None:
    """A Matroska file is a video, but not one xAI edits."""
    path = tmp_path / "clip.mkv"
    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for index in range(10):
            frame = av.VideoFrame(32, 32, "yuv420p")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(probing.MediaError, match="not an MP4"):
        await probing.check_edit_video(path.read_bytes())


async def test_a_file_that_fits_is_copied_unchanged(tmp_path: Path) -> None:
    """No re-encoding when the video is already small enough."""
    source = tmp_path / "in.mp4"
    source.write_bytes(make_mp4(1.0))
    await shrinking.fit_to_size(source, tmp_path / "out.mp4", 10 * 1024 * 1024)
    assert (tmp_path / "out.mp4").read_bytes() == source.read_bytes()


async def test_a_large_video_is_squeezed_under_the_limit_and_still_plays(tmp_path: Path) -> None:
    """A noisy 640x360 clip of many MB fits in 2 MiB, keeps its audio and length, and decodes end to end."""
    source = tmp_path / "big.mp4"
    source.write_bytes(make_mp4(3.0, width=640, height=360, fps=24, noise=True))
    assert source.stat().st_size > 2 * 1024 * 1024
    info = await shrinking.fit_to_size(source, tmp_path / "small.mp4", 2 * 1024 * 1024)
    data = (tmp_path / "small.mp4").read_bytes()
    assert len(data) <= 2 * 1024 * 1024 and info.audio_codec == "aac" and abs(info.duration_s - 3.0) < 0.5
    with av.open(io.BytesIO(data), "r") as container:
        assert sum(1 for _ in container.decode(video=0)) >= 60


# -- checking a downloaded result ----------------------------------------------------------------


def _cut_with_boxes_mended(data: bytes) -> bytes:
    """Cut at 2/3 and shrink the media box to match: the boxes fit the file, but a third of the samples are gone."""
    cut = bytearray(data[: len(data) * 2 // 3])
    start = data.find(b"mdat") - 4
    cut[start : start + 4] = (len(cut) - start).to_bytes(4, "big")
    return bytes(cut)


async def test_a_whole_result_with_sound_passes(tmp_path: Path) -> None:
    """Every box inside the file, video and audio decodable to the end: its facts come back."""
    path = tmp_path / "whole.mp4"
    path.write_bytes(make_mp4(3.0))
    info = await probing.check_result_video(path)
    assert info.video_codec == "h264" and info.audio_codec == "aac" and info.duration_s == pytest.approx(3.0, abs=0.1)


@pytest.mark.parametrize("audio", [True, False])
async def test_a_result_cut_off_with_a_matching_length_is_refused(tmp_path: Path, audio: bool) -> None:
    """The cut a lying Content-Length hides: probing alone says 3 s and fine, the check says damaged."""
    path = tmp_path / "cut.mp4"
    data = make_mp4(3.0, audio=audio)
    path.write_bytes(data[: len(data) * 2 // 3])
    assert (await probing.probe_video(path)).duration_s == pytest.approx(3.0, abs=0.1)  # looks fine
    with pytest.raises(probing.MediaError, match="cut off"):
        await probing.check_result_video(path)


async def test_a_result_whose_boxes_fit_but_whose_samples_are_missing_is_refused(tmp_path: Path) -> None:
    """Decoding every stream to its end catches what the box walk cannot."""
    path = tmp_path / "mended.mp4"
    path.write_bytes(_cut_with_boxes_mended(make_mp4(3.0)))
    assert decoding.mp4_file_complete(path)
    with pytest.raises(probing.MediaError):
        await probing.check_result_video(path)


async def test_an_edit_input_whose_samples_are_missing_is_refused() -> None:
    """An edit input gets the same full decode of every stream."""
    with pytest.raises(probing.MediaError):
        await probing.check_edit_video(_cut_with_boxes_mended(make_mp4(3.0)))


# -- bounded decoding: a file's claims bound nothing ---------------------------------------------


def _claiming(data: bytes, seconds: float) -> bytes:
    """The MP4 with its movie and track headers rewritten to claim ``seconds``; every frame is still there."""
    out = bytearray(data)
    for box in (b"mvhd", b"mdhd"):
        start = 0
        while (at := out.find(box, start)) >= 0:
            start = at + 4
            assert out[at + 4] == 0  # version 0: flags, creation, modification, timescale, duration (32 bits each)
            timescale = struct.unpack(">I", out[at + 16 : at + 20])[0]
            out[at + 20 : at + 24] = struct.pack(">I", int(seconds * timescale))
    return bytes(out)


async def test_an_edit_input_that_says_it_is_too_long_is_refused_before_any_decoding() -> None:
    """A minute-long file whose later samples are gone gets "60.0 seconds long", not "cut off": nothing was decoded."""
    data = _cut_with_boxes_mended(make_mp4(60.0, fps=4, audio=False))
    with pytest.raises(
        probing.MediaError, match=r"That video is 60\.0 seconds long; xAI can edit at most 8\.7 seconds"
    ):
        await probing.check_edit_video(data)


async def test_an_edit_input_that_claims_two_seconds_but_holds_a_minute_is_refused() -> None:
    """Its header says 2 s; decoding stops (and refuses) as soon as its frames pass 8.7 s, not at the minute's end."""
    data = _claiming(make_mp4(60.0, fps=12), 2.0)
    with av.open(io.BytesIO(data), "r") as container:
        assert decoding.declared_duration(container.streams.video[0], container) == pytest.approx(2.0)
        with pytest.raises(decoding.Overlong) as stopped:
            decoding.decode_every_stream(container, 8.75)
    assert stopped.value.frames <= 8.75 * 12 + 2  # about 105 of the 720 frames were decoded
    with pytest.raises(probing.MediaError, match=r"runs longer than 8\.7 seconds"):
        await probing.check_edit_video(data)


async def test_an_edit_input_with_more_frames_than_its_length_can_hold_is_refused() -> None:
    """Timestamps can lie too: past 240 frames a second for 8.7 s, decoding stops whatever the clock says."""
    data = make_mp4(1.0, fps=2400, audio=False)
    with pytest.raises(probing.MediaError, match=r"more frames than 8\.7 seconds can hold"):
        await probing.check_edit_video(data)


async def test_a_result_longer_than_xai_makes_is_refused(tmp_path: Path) -> None:
    """A result says 30 s (xAI makes at most 15, an extension at most 25): refused before decoding; one claiming
    3 s but holding 60 too."""
    says_so = tmp_path / "long.mp4"
    says_so.write_bytes(make_mp4(30.0, fps=4, audio=False))
    with pytest.raises(probing.MediaError, match="longer than any video xAI makes"):
        await probing.check_result_video(says_so)
    lies = tmp_path / "lies.mp4"
    lies.write_bytes(_claiming(make_mp4(60.0, fps=12), 3.0))
    with pytest.raises(probing.MediaError, match="longer than any video xAI makes"):
        await probing.check_result_video(lies)
    whole = tmp_path / "fifteen.mp4"
    whole.write_bytes(make_mp4(15.0, fps=4))
    assert (await probing.check_result_video(whole)).duration_s == pytest.approx(15.0, abs=0.2)


# -- downloads ---------------------------------------------------------------------------------

PAYLOAD = b"x" * 300_000


async def _serve(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name == "ok":
        return web.Response(body=PAYLOAD)
    if name == "chunked":
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(10):
            await response.write(b"y" * 100_000)
        await response.write_eof()
        return response
    if name == "short":
        response = web.StreamResponse(headers={"Content-Length": "1000000"})
        await response.prepare(request)
        await response.write(b"z" * 1000)
        assert request.transport is not None
        request.transport.close()
        return response
    if name == "hang":
        await asyncio.sleep(1)  # past the 0.5 s the download allows; the fixture's teardown waits out the rest
    return web.Response(status=404)


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/{name}", _serve)
    async with serving(app) as base_url:
        yield base_url


async def test_a_download_lands_whole(server: str, tmp_path: Path) -> None:
    """The body is streamed into the destination and its size returned."""
    async with aiohttp.ClientSession() as session:
        size = await downloading.download(session, f"{server}/ok", tmp_path / "a.mp4", max_bytes=1_000_000)
    assert size == len(PAYLOAD) and (tmp_path / "a.mp4").read_bytes() == PAYLOAD


@pytest.mark.parametrize(
    ("name", "max_bytes", "words", "transient"),
    [
        ("ok", 1000, "over the", False),
        ("chunked", 500_000, "over the", False),
        ("short", 10_000_000, "cut short", True),
        ("missing", 1000, "HTTP 404", False),
        ("hang", 1000, "timed out", True),
    ],
)
async def test_downloads_fail_safely(
    server: str, tmp_path: Path, name: str, max_bytes: int, words: str, transient: bool
) -> None:
    """Too big (with or without Content-Length), cut short, missing and hanging downloads leave no file behind."""
    async with aiohttp.ClientSession() as session:
        with pytest.raises(downloading.DownloadError, match=words) as caught:
            await downloading.download(
                session, f"{server}/{name}", tmp_path / "a.mp4", max_bytes=max_bytes, timeout_s=0.5
            )
    assert caught.value.transient is transient
    assert not list(tmp_path.iterdir())


async def test_downloads_only_from_allowed_hosts(server: str, tmp_path: Path) -> None:
    """A URL on another host is refused before any connection."""
    async with aiohttp.ClientSession() as session:
        with pytest.raises(downloading.DownloadError, match="not allowed"):
            await downloading.download(
                session,
                f"{server}/ok",
                tmp_path / "a.mp4",
                max_bytes=10**6,
                allowed_hosts=AllowedHosts(any_scheme_entries={"vidgen.x.ai"}),
            )
