"""Property tests over everything the bot reads from xAI and every address it may fetch: generated hostile
JSON (any mix of types for every field, NaN, infinities, huge and negative numbers, garbled text) always
becomes a typed outcome or an XaiError with a sentence, and every address is allowed or refused in words."""

from __future__ import annotations

import math
from typing import Any

import yarl
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from services.media.hosts import AllowedHosts
from services.xai.answers import (
    Done,
    Expired,
    Failed,
    Moderated,
    Pending,
    error_text,
    http_error,
    read_poll,
    retry_after_seconds,
)
from services.xai.errors import XaiError, XaiProtocolError

# The bounds the client promises, restated here rather than taken from the code under test.
MAX_COST_TICKS = 10**14  # $10,000: no single video costs that; a bigger figure is garbage
MAX_RETRY_AFTER_S = 60.0
MAX_TEXT_CHARS = 300

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Scalars xAI (or whatever answers in its place) might put in any field.
hostile_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**18, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308, -1.0, -0.0, 0.5, 99.99, 100, 101, 1e999]),
    st.text(max_size=30),
    st.text(alphabet=st.characters(codec=None, categories=None), max_size=30),  # surrogates and controls too
    st.sampled_from(["done", "DONE", " failed ", "pending", "expired", "queued", "", "45", "NaN", "\ud800", "\x00"]),
    st.sampled_from(["http://127.0.0.1:99999/x.mp4", "ftp://vidgen.x.ai/x", "/relative.mp4", "https://a b/c"]),
    st.just("x" * 9000),
)
hostile_json = st.recursive(
    hostile_scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12,
)
# Answers shaped like xAI's, with every field drawn from anything at all.
field_value = st.one_of(hostile_json, hostile_scalar)
hostile_answer = st.fixed_dictionaries(
    {},
    optional={
        "status": st.one_of(st.sampled_from(["done", "failed", "pending", "expired", "weird"]), field_value),
        "progress": field_value,
        "model": field_value,
        "video": st.one_of(
            field_value,
            st.fixed_dictionaries(
                {},
                optional={"url": field_value, "duration": field_value, "respect_moderation": field_value},
            ),
        ),
        "usage": st.one_of(field_value, st.fixed_dictionaries({}, optional={"cost_in_usd_ticks": field_value})),
        "error": st.one_of(
            field_value, st.fixed_dictionaries({}, optional={"code": field_value, "message": field_value})
        ),
    },
)


def _assert_clean(text: str) -> None:
    """Text that may reach a message or the store: printable, one line, bounded, storable as UTF-8."""
    assert len(text) <= MAX_TEXT_CHARS + 200
    text.encode("utf-8")  # a lone surrogate would make SQLite refuse the row
    assert all(ch.isprintable() for ch in text), repr(text)


@PROPERTY
@given(status=st.sampled_from([200, 201, 202, 204]), payload=st.one_of(hostile_answer, hostile_json))
@example(status=200, payload={"status": "pending", "progress": float("nan")})
@example(status=200, payload={"status": "pending", "progress": 1e999})
@example(status=202, payload={"progress": -5})
@example(status=200, payload={"status": "done", "video": {"url": 5}, "usage": {"cost_in_usd_ticks": float("nan")}})
@example(status=200, payload={"status": "failed", "error": {"code": ["x"], "message": {"a": 1}}})
def test_any_poll_answer_becomes_a_typed_outcome(status: int, payload: Any) -> None:
    """read_poll returns an outcome with sane fields, or raises XaiProtocolError; never anything else."""
    try:
        result = read_poll(status, payload)
    except XaiProtocolError as error:
        assert error.transient and str(error)
        return
    assert isinstance(result, Pending | Done | Failed | Moderated | Expired)
    if isinstance(result, Pending):
        assert result.progress is None or (type(result.progress) is int and 0 <= result.progress <= 100)
    if isinstance(result, Done):
        assert isinstance(result.url, str)
        assert result.duration_s is None or (math.isfinite(result.duration_s) and result.duration_s > 0)
    if isinstance(result, Failed | Moderated):
        assert result.message
        _assert_clean(result.message)
    if isinstance(result, Done | Failed | Moderated):
        ticks = result.cost_usd_ticks
        assert ticks is None or (type(ticks) is int and 0 <= ticks <= MAX_COST_TICKS)


@PROPERTY
@given(
    status=st.integers(min_value=300, max_value=599),
    payload=st.one_of(hostile_answer, hostile_json),
    raw=st.one_of(st.text(max_size=400), st.just("<html><body>502 Bad Gateway</body></html>")),
    polling=st.booleans(),
)
@example(status=400, payload=["moderated"], raw="moderated", polling=True)  # a list body used to crash _cost
def test_any_error_answer_becomes_an_error_with_a_sentence(status: int, payload: Any, raw: str, polling: bool) -> None:
    """http_error maps every status and body to an XaiError (or, on a poll, Moderated) with clean words."""
    mapped = http_error(status, payload, raw, polling=polling)
    assert isinstance(mapped, XaiError | Moderated)
    text = str(mapped) if isinstance(mapped, XaiError) else mapped.message
    assert text
    _assert_clean(text)
    assert "<html" not in text


@PROPERTY
@given(payload=st.one_of(hostile_answer, hostile_json), raw=st.text(max_size=2000))
def test_error_text_is_always_two_clean_strings(payload: Any, raw: str) -> None:
    """Whatever the error body, code and message are short printable strings."""
    code, message = error_text(payload, raw)
    assert isinstance(code, str) and isinstance(message, str)
    _assert_clean(code)
    _assert_clean(message)


@PROPERTY
@given(ticks=field_value)
@example(ticks="3000000000")
@example(ticks=-1)
@example(ticks=10**30)
@example(ticks=float("nan"))
def test_a_reported_cost_is_a_plausible_bill_or_nothing(ticks: Any) -> None:
    """NaN, infinities, negative, absurd or non-numeric costs become None, so the estimate counts instead."""
    answer = {"status": "done", "video": {"url": "https://vidgen.x.ai/v.mp4"}, "usage": {"cost_in_usd_ticks": ticks}}
    result = read_poll(200, answer)
    assert isinstance(result, Done)
    cost = result.cost_usd_ticks
    assert cost is None or (type(cost) is int and 0 <= cost <= MAX_COST_TICKS)
    if type(ticks) is int and 0 <= ticks <= MAX_COST_TICKS:
        assert result.cost_usd_ticks == ticks


@PROPERTY
@given(value=st.one_of(st.none(), st.text(max_size=60), st.sampled_from(["nan", "inf", "-5", "1e999", "1_0", "٣"])))
@example(value="Wed, 21 Oct 2015 07:28:00 GMT")
@example(value="Fri, 31 Dec 99999 23:59:59 GMT")
@example(value="0.2")
def test_retry_after_is_a_bounded_number_of_seconds_or_nothing(value: str | None) -> None:
    """Retry-After of any shape gives 0..60 seconds, or None (then the client's own backoff applies)."""
    seconds = retry_after_seconds(value)
    assert seconds is None or (math.isfinite(seconds) and 0 <= seconds <= MAX_RETRY_AFTER_S)


def test_retry_after_reads_seconds_and_dates() -> None:
    """The two forms HTTP allows are honoured; garbage is ignored rather than obeyed."""
    assert retry_after_seconds("0.2") == 0.2 and retry_after_seconds("5") == 5.0
    assert retry_after_seconds("3600") == MAX_RETRY_AFTER_S
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: go now
    assert all(retry_after_seconds(garbage) is None for garbage in ("nan", "-5", "inf", "1e999", "soon"))


urls = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.characters(codec=None, categories=None), max_size=40),
    st.builds(
        lambda scheme, host, port, path: f"{scheme}{host}{port}{path}",
        st.sampled_from(["http://", "https://", "HTTPS://", "ftp://", "file://", "javascript:", "//", "", "http:\\\\"]),
        st.sampled_from(["vidgen.x.ai", "127.0.0.1", "[::1]", "[::1", "a b", "vіdgen.x.ai", "user:pw@vidgen.x.ai", ""]),
        st.sampled_from(["", ":0", ":443", ":99999", ":-1", ":abc", ":80:90", ":"]),
        st.text(max_size=30),
    ),
)


@PROPERTY
@given(url=st.one_of(urls, hostile_scalar))
@example(url="http://host:99999/x")
@example(url="https://evil.com\\@vidgen.x.ai/a")
@example(url="http://\udcffx.com/")
@example(url="0://[]@")  # yarl: IndexError on an empty bracketed host
def test_any_address_is_allowed_or_refused_with_a_sentence(url: Any) -> None:
    """refusal() never raises; what it allows is exactly an allowed host, scheme and port as aiohttp reads it."""
    reason = AllowedHosts(["vidgen.x.ai"], ["127.0.0.1:8080"]).refusal(url)
    assert reason is None or (isinstance(reason, str) and reason)
    if reason is None:
        parsed = yarl.URL(url)
        assert parsed.user is None and parsed.port is not None
        assert (parsed.raw_host, parsed.scheme) == ("vidgen.x.ai", "https") or (parsed.raw_host, parsed.port) == (
            "127.0.0.1",
            8080,
        )
