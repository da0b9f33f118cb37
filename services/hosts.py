"""Which hosts the bot may download from.

A URL that reaches the bot (an attachment's link, the video address in xAI's answer) is data, not
trust: fetching whatever it names would let anyone who can shape it aim the bot at internal services.
So attachments come only from Discord's CDN, finished videos only from xAI's, each over https; the
one exception is the host of a base URL the admin configured (a proxy, or the test emulators), whose
scheme the admin chose.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

DISCORD_ATTACHMENT_HOSTS: tuple[str, ...] = ("cdn.discordapp.com", "media.discordapp.net")
DEFAULT_XAI_DOWNLOAD_HOSTS: tuple[str, ...] = ("vidgen.x.ai",)

_ENTRY = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d{1,5})?$")


def valid_entry(entry: str) -> bool:
    """``host``, ``host:port`` or ``*.domain`` (the domain and every subdomain)."""
    return bool(_ENTRY.match(entry))


class AllowedHosts:
    """A set of host rules: ``https_entries`` need https; ``any_scheme_entries`` (configured base URLs) don't."""

    def __init__(self, https_entries: Iterable[str] = (), any_scheme_entries: Iterable[str] = ()) -> None:
        self.https_entries = frozenset(e.lower() for e in https_entries)
        self.any_scheme_entries = frozenset(e.lower() for e in any_scheme_entries)

    def __repr__(self) -> str:
        names = sorted(self.https_entries | self.any_scheme_entries)
        return f"AllowedHosts({', '.join(names)})"

    def refusal(self, url: str) -> str | None:
        """Why ``url`` may not be fetched, in words for a person; None when it may."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            return "the address is not an http(s) URL"
        netloc = f"{host}:{parts.port}" if parts.port is not None else host
        if any(_matches(entry, host, netloc) for entry in self.any_scheme_entries):
            return None
        if any(_matches(entry, host, netloc) for entry in self.https_entries):
            return None if parts.scheme == "https" else f"downloads from {host} must use https"
        return f"downloads from {host} are not allowed"


def _matches(entry: str, host: str, netloc: str) -> bool:
    if entry.startswith("*."):
        domain = entry[2:]
        return host == domain or host.endswith("." + domain)
    if ":" in entry:
        return entry == netloc
    return entry == host


def _with_base(https_entries: Iterable[str], base_url: str | None) -> AllowedHosts:
    """``https_entries``, plus the base URL's host over the scheme the admin gave it."""
    https = list(https_entries)
    plain: list[str] = []
    parts = urlsplit(base_url or "")
    if parts.hostname:
        host = parts.hostname.lower()
        entry = f"{host}:{parts.port}" if parts.port is not None else host
        (https if parts.scheme in ("https", "wss") else plain).append(entry)
    return AllowedHosts(https, plain)


def discord_attachment_hosts(api_base_url: str | None = None) -> AllowedHosts:
    """Discord's CDN, plus the host of ``DISCORD_API_BASE_URL`` when one is configured."""
    return _with_base(DISCORD_ATTACHMENT_HOSTS, api_base_url)


def xai_download_hosts(base_url: str, download_hosts: Iterable[str] = DEFAULT_XAI_DOWNLOAD_HOSTS) -> AllowedHosts:
    """``XAI_DOWNLOAD_HOSTS`` over https, plus the host of ``XAI_BASE_URL``."""
    return _with_base(download_hosts, base_url)
