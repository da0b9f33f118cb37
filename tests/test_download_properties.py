"""Property tests over the download path against a raw HTTP server on loopback: hostile video addresses and
hostile answers (any status, garbled or looping Location headers, Content-Lengths that lie, junk bodies).
The download either lands whole or raises DownloadError with a sentence; never another exception, never a
partial file left behind. (A dead download task would leave its job in DOWNLOADING forever.)"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from services.media import downloading
from services.media.hosts import AllowedHosts

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAX_BYTES = 1000


@dataclass
class RawServer:
    """Answers GET /<token> with the exact bytes registered for that token, then closes the connection."""

    port: int = 0
    answers: dict[str, bytes] = field(default_factory=dict)
    requests: list[bytes] = field(default_factory=list)
    _tokens: Iterator[int] = field(default_factory=itertools.count)

    def add(self, answer: bytes) -> str:
        token = f"t{next(self._tokens)}"
        self.answers[token] = answer
        return token

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return
        self.requests.append(head)
        target = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b"/"
        token = target.decode("latin-1").lstrip("/").split("?")[0]
        writer.write(self.answers.get(token, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
        try:
            await writer.drain()
        finally:
            writer.close()


@pytest.fixture(scope="module")
def raw_server() -> Iterator[RawServer]:
    server = RawServer()
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def start() -> asyncio.Server:
        listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        server.port = listening.sockets[0].getsockname()[1]
        return listening

    def run() -> None:
        asyncio.set_event_loop(loop)
        listening = loop.run_until_complete(start())
        ready.set()
        loop.run_forever()
        listening.close()
        loop.run_until_complete(listening.wait_closed())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(5)
    yield server
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def _fetch(url: str, rules: AllowedHosts | None) -> tuple[int | Exception, list[str]]:
    """Run one download in a fresh loop and session; return its size or the exception, and what was left on disk."""

    async def go(dest: Path) -> int:
        async with aiohttp.ClientSession() as session:
            return await downloading.download(
                session, url, dest, max_bytes=MAX_BYTES, timeout_s=2.0, allowed_hosts=rules
            )

    with tempfile.TemporaryDirectory() as folder:
        dest = Path(folder) / "video.mp4"
        try:
            outcome: int | Exception = asyncio.run(go(dest))
        except Exception as error:  # the property: only DownloadError may come out
            outcome = error
        left = sorted(p.name for p in Path(folder).iterdir())
        if isinstance(outcome, int):
            assert dest.stat().st_size == outcome
    return outcome, left


def _check(outcome: int | Exception, left: list[str]) -> None:
    if isinstance(outcome, int):
        assert 0 <= outcome <= MAX_BYTES and left == ["video.mp4"]
        return
    assert isinstance(outcome, downloading.DownloadError), repr(outcome)
    assert str(outcome) and left == []


no_newlines = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
locations = st.one_of(
    no_newlines,
    st.sampled_from(
        [
            b"http://[::1",
            b"http://127.0.0.1:99999/x",
            b"http://127.0.0.1:abc/",
            b"//evil.example/x",
            b"javascript:alert(1)",
            b"file:///etc/passwd",
            b"\xff\xfe\xfd",
            b"http://user:pw@127.0.0.1/",
            b"http://evil.com\\@127.0.0.1/",
            b"",
            b" ",
            b"/%zz",
            b"http://localhost/x",
        ]
    ),
    st.text(max_size=40).map(lambda t: t.replace("\r", "").replace("\n", "").encode("utf-8", "surrogateescape")),
)
statuses = st.sampled_from([200, 201, 204, 206, 299, 300, 301, 302, 303, 304, 307, 308, 400, 404, 429, 500, 503, 999])
lengths = st.one_of(
    st.none(), st.just("right"), st.sampled_from([b"0", b"5", b"99999999", b"-1", b"abc", b"1, 2", b"10" * 40])
)


@st.composite
def answers(draw: st.DrawFn, self_token: str) -> bytes:
    status = draw(statuses)
    body = draw(st.binary(max_size=1500))
    lines = [b"HTTP/1.1 %d Whatever" % status]
    if draw(st.booleans()) or status in (301, 302, 303, 307, 308):
        location = draw(st.one_of(locations, st.just(f"/{self_token}".encode())))  # the last one loops
        lines.append(b"Location: " + location)
    length = draw(lengths)
    if length == "right":
        lines.append(b"Content-Length: %d" % len(body))
    elif isinstance(length, bytes):
        lines.append(b"Content-Length: " + length)
    if draw(st.booleans()):
        lines.append(draw(no_newlines))  # a junk header line
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@PROPERTY
@given(data=st.data())
def test_any_answer_from_the_video_host_ends_in_a_file_or_a_download_error(
    raw_server: RawServer, data: st.DataObject
) -> None:
    """Statuses, redirects (garbled, looping, elsewhere), lying lengths and junk: a whole file or DownloadError."""
    token = f"t-loop-{data.draw(st.integers(0, 10**9))}"
    raw_server.answers[token] = data.draw(answers(token))
    rules = AllowedHosts(any_scheme_entries=[f"127.0.0.1:{raw_server.port}"])
    _check(*_fetch(f"http://127.0.0.1:{raw_server.port}/{token}", rules))


suffixes = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec=None, categories=None), max_size=20),
    st.sampled_from([":99999/x", ":0/x", "@evil/x", "\\@evil/", "/a b", "/%00", "/" + "a" * 9000, "#frag", "?q=1"]),
    st.sampled_from(["/{ok}", ":{port}/{ok}", "/{ok}?sig=1#x", "/{ok}/../{ok}", "/{ok}%00"]),  # these reach the server
)


prefixes = st.sampled_from(["http://127.0.0.1:{port}", "http://127.0.0.1", "HTTP://127.0.0.1:{port}", ""])


@PROPERTY
@given(prefix=prefixes, tail=suffixes)
@example(prefix="http://127.0.0.1:{port}", tail=":99999/x")
@example(prefix="http://127.0.0.1", tail=":{port}/\udcff")
def test_any_video_address_ends_in_a_file_or_a_download_error(raw_server: RawServer, prefix: str, tail: str) -> None:
    """Hostile addresses xAI might send are fetched or refused in words; only the allowed loopback port is ever hit."""
    ok = raw_server.add(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndata")
    url = (prefix + tail).replace("{port}", str(raw_server.port)).replace("{ok}", ok)
    rules = AllowedHosts(any_scheme_entries=[f"127.0.0.1:{raw_server.port}"])
    _check(*_fetch(url, rules))


@pytest.mark.parametrize(
    ("answer", "words", "transient"),
    [
        (b"HTTP/1.1 302 Found\r\nLocation: http://[::1\r\nContent-Length: 0\r\n\r\n", "not a valid URL", False),
        (b"HTTP/1.1 302 Found\r\nLocation: http://a:99999/x\r\nContent-Length: 0\r\n\r\n", "not a valid URL", False),
        (b"HTTP/1.1 302 Found\r\nLocation: javascript:x\r\nContent-Length: 0\r\n\r\n", "not an http(s) URL", False),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\n\r\n", "HTTP 304", False),
        (b"HTTP/1.1 302 Found\r\nContent-Length: 4\r\n\r\ndata", "HTTP 302", False),
        (b"HTTP/1.1 429 Too Many\r\nContent-Length: 0\r\n\r\n", "HTTP 429", True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\nshort", "cut short", True),
    ],
)
def test_garbled_redirects_and_odd_statuses_are_download_errors(
    raw_server: RawServer, answer: bytes, words: str, transient: bool
) -> None:
    """A Location yarl cannot read, a redirect without one, a 304 or a 429 are each a DownloadError, not a crash."""
    token = raw_server.add(answer)
    outcome, left = _fetch(
        f"http://127.0.0.1:{raw_server.port}/{token}", AllowedHosts(any_scheme_entries=[f"127.0.0.1:{raw_server.port}"])
    )
    assert isinstance(outcome, downloading.DownloadError) and words in str(outcome), repr(outcome)
    assert outcome.transient is transient and left == []


def test_a_redirect_loop_stops(raw_server: RawServer) -> None:
    """An address that redirects to itself is given up after MAX_REDIRECTS hops, in words."""
    token = "loop-forever"
    raw_server.answers[token] = f"HTTP/1.1 302 Found\r\nLocation: /{token}\r\nContent-Length: 0\r\n\r\n".encode()
    before = len(raw_server.requests)
    outcome, left = _fetch(
        f"http://127.0.0.1:{raw_server.port}/{token}", AllowedHosts(any_scheme_entries=[f"127.0.0.1:{raw_server.port}"])
    )
    assert isinstance(outcome, downloading.DownloadError) and "redirects too many times" in str(outcome)
    assert len(raw_server.requests) - before == downloading.MAX_REDIRECTS + 1 and left == []
