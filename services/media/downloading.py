"""Downloading a file safely: only from allowed hosts, every redirect judged, never more than a cap.

Each hop goes through the proxy for its own host (``services.process.proxies``). Every problem with the
address, the server or the connection is a ``DownloadError`` that says whether trying again may help.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import NoReturn

import aiohttp
import yarl

from services.media.hosts import AllowedHosts, BadAddress, describe_address, parse_address
from services.media.sizes import describe_size
from services.process import proxies

log = logging.getLogger(__name__)


class DownloadError(Exception):
    """A download failed. ``transient`` says whether trying again may help."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
RETRYABLE_STATUSES = frozenset({408, 425, 429})  # and every 5xx: the server may answer next time


def _check_address(url: object, rules: AllowedHosts | None) -> yarl.URL:
    """The URL to fetch, read once (what is judged is what is fetched); DownloadError when the bot may not."""
    try:
        address = parse_address(url)
    except BadAddress as bad:
        _refuse(url, str(bad))
    refusal = rules.refusal_of(address) if rules is not None else None
    if refusal is not None:
        _refuse(url, refusal)
    return address


def _refuse(url: object, reason: str) -> NoReturn:
    log.warning("Refused to download %s: %s", describe_address(url), reason)
    raise DownloadError(reason, transient=False)


def _next_address(current: yarl.URL, location: str, rules: AllowedHosts | None) -> yarl.URL:
    """Where a redirect points, judged exactly like the first address; a garbled Location is refused."""
    try:
        target = current.join(yarl.URL(location))
    except (ValueError, TypeError):
        _refuse(current, "the server redirected to an address that is not a valid URL")
    return _check_address(str(target), rules)


async def _follow(
    session: aiohttp.ClientSession, address: yarl.URL, timeout: aiohttp.ClientTimeout, rules: AllowedHosts | None
) -> aiohttp.ClientResponse:
    """GET ``address``, following at most ``MAX_REDIRECTS`` redirects, each checked before it is requested.

    Each hop goes through the proxy for its own host (or direct, by NO_PROXY): the session has none of its own.
    """
    for _ in range(MAX_REDIRECTS + 1):
        proxy = proxies.address_for(address)
        response = await session.get(address, timeout=timeout, allow_redirects=False, proxy=proxy)
        location = response.headers.get("Location") if response.status in REDIRECT_STATUSES else None
        if location is None:
            return response
        response.release()
        address = _next_address(response.url, location, rules)
    raise DownloadError("the address redirects too many times", transient=False)


async def download(
    session: aiohttp.ClientSession,
    url: str,
    dest: Path,
    *,
    max_bytes: int,
    timeout_s: float = 120.0,
    allowed_hosts: AllowedHosts | None = None,
) -> int:
    """Stream ``url`` into ``dest`` (via a .part file), refusing more than ``max_bytes``; returns the size.

    With ``allowed_hosts``, the URL and every redirect it leads to must be on an allowed host, checked
    before each request is made. Every problem with the address, the server or the connection is a
    ``DownloadError`` (a full disk stays an ``OSError``); no other exception comes out."""
    address = _check_address(url, allowed_hosts)
    partial = dest.with_name(dest.name + ".part")
    try:
        size = await _fetch(session, address, partial, max_bytes, timeout_s, allowed_hosts)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(dest)
    log.debug("Downloaded %s (%d bytes)", describe_address(address), size)
    return size


async def _fetch(
    session: aiohttp.ClientSession,
    address: yarl.URL,
    partial: Path,
    max_bytes: int,
    timeout_s: float,
    rules: AllowedHosts | None,
) -> int:
    """The download itself, with every library error turned into a DownloadError."""
    size = 0
    try:
        response = await _follow(session, address, aiohttp.ClientTimeout(total=timeout_s), rules)
        async with response:
            status = response.status
            if not 200 <= status < 300:
                raise DownloadError(
                    f"the server answered HTTP {status}", transient=status >= 500 or status in RETRYABLE_STATUSES
                )
            declared = _declared_length(response)
            if declared is not None and declared > max_bytes:
                raise DownloadError(
                    f"the file is {describe_size(declared)}, over the {describe_size(max_bytes)} limit", transient=False
                )
            with partial.open("wb") as sink:
                async for chunk in response.content.iter_chunked(256 * 1024):
                    size += len(chunk)
                    if size > max_bytes:
                        raise DownloadError(f"the file is over the {describe_size(max_bytes)} limit", transient=False)
                    await asyncio.to_thread(sink.write, chunk)
            if declared is not None and size < declared:
                raise DownloadError("the download was cut short", transient=True)
    except TimeoutError:
        raise DownloadError("the download timed out", transient=True) from None
    except aiohttp.ClientPayloadError:
        raise DownloadError("the download was cut short", transient=True) from None
    except aiohttp.InvalidURL:
        _refuse(address, "the address is not a valid URL")
    except aiohttp.ClientConnectorError as error:
        log.info("Download of %s failed: %s", describe_address(address), type(error).__name__)
        raise DownloadError("the bot could not connect to the server that has the file", transient=True) from None
    except aiohttp.ClientError as error:
        log.info("Download of %s failed: %s", describe_address(address), type(error).__name__)
        raise DownloadError("the connection broke during the download", transient=True) from None
    except (ValueError, UnicodeError) as error:  # the library refused something in the URL or the answer's headers
        log.info("Download of %s failed: %s", describe_address(address), type(error).__name__)
        raise DownloadError("the server's answer could not be read", transient=False) from None
    return size


def _declared_length(response: aiohttp.ClientResponse) -> int | None:
    """The Content-Length, when there is a sane one (it is only a claim: the bytes are counted too)."""
    try:
        declared = response.content_length
    except ValueError:
        return None
    return declared if declared is not None and declared >= 0 else None
