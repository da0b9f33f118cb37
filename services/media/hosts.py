"""Which hosts the bot may download from, and which addresses it will fetch at all.

A URL that reaches the bot (an attachment's link, the video address in xAI's answer) is data, not
trust: fetching whatever it names would let anyone who can shape it aim the bot at internal services.
So attachments come only from Discord's CDN, finished videos only from xAI's, each over https; the
one exception is the host of a base URL the admin configured (a proxy, or the test emulators), whose
scheme the admin chose.

An address is read once, with yarl (the parser aiohttp itself uses), and that parsed URL is both what
the rules judge and what is fetched: two parsers that disagree about a host are how allow-lists are
walked around. Anything strange (no host, a bad port, spaces, credentials, a huge string) is refused
with one sentence instead of surfacing later as a library's ValueError.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import yarl

DISCORD_ATTACHMENT_HOSTS: tuple[str, ...] = ("cdn.discordapp.com", "media.discordapp.net")
DEFAULT_XAI_DOWNLOAD_HOSTS: tuple[str, ...] = ("vidgen.x.ai",)
MAX_ADDRESS_CHARS = 8192  # signed CDN links run to a couple of thousand characters

_ENTRY = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d{1,5})?$")
_HOST_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$")
_IPV6 = re.compile(r"^[0-9a-f:.]+$")
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")


class BadAddress(ValueError):
    """An address the bot will not fetch. ``str()`` is the reason, in words for a person."""


def valid_entry(entry: str) -> bool:
    """``host``, ``host:port`` or ``*.domain`` (the domain and every subdomain)."""
    return bool(_ENTRY.match(entry))


def parse_address(url: object) -> yarl.URL:
    """``url`` as the absolute http(s) URL aiohttp would fetch, or ``BadAddress`` saying what is wrong."""
    if isinstance(url, yarl.URL):
        url = str(url)
    if not isinstance(url, str) or not url:
        raise BadAddress("the address is missing")
    if len(url) > MAX_ADDRESS_CHARS:
        raise BadAddress(f"the address is too long (over {MAX_ADDRESS_CHARS} characters)")
    if _SPACE_OR_CONTROL.search(url):
        raise BadAddress("the address contains spaces or control characters")
    try:
        parsed = yarl.URL(url)
        host = parsed.raw_host
        port = parsed.port
    except (ValueError, IndexError):  # a bad port, a broken IPv6 literal, a backslash in the host, a name IDNA
        # refuses; yarl raises IndexError on an empty bracketed host after a user part ("0://[]@")
        raise BadAddress("the address is not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not host or not parsed.is_absolute():
        raise BadAddress("the address is not an http(s) URL")
    if parsed.raw_user is not None or parsed.raw_password is not None:
        raise BadAddress("the address carries a user name or password")
    if port is None or not 1 <= port <= 65535:
        raise BadAddress("the address has an invalid port number")
    if not _valid_host(host.lower()):
        raise BadAddress("the address has an invalid host name")
    return parsed


def _valid_host(host: str) -> bool:
    if ":" in host:  # an IPv6 literal (zone ids such as %eth0 are refused)
        return bool(_IPV6.match(host))
    return len(host) <= 253 and bool(_HOST_NAME.match(host))


def describe_address(url: object) -> str:
    """scheme://host[:port]/path for logs, never the query (signed URLs carry bearer secrets there)."""
    if not url:
        return "(no address)"
    try:
        parsed = yarl.URL(str(url))
        port = f":{parsed.explicit_port}" if parsed.explicit_port is not None else ""
        text = f"{parsed.scheme}://{parsed.raw_host or ''}{port}{parsed.raw_path}"
    except (ValueError, TypeError):
        return "(an address that is not a valid URL)"
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= 200 else text[:200] + "..."


class AllowedHosts:
    """A set of host rules: ``https_entries`` need https; ``any_scheme_entries`` (configured base URLs) don't."""

    def __init__(self, https_entries: Iterable[str] = (), any_scheme_entries: Iterable[str] = ()) -> None:
        self.https_entries = frozenset(e.lower() for e in https_entries)
        self.any_scheme_entries = frozenset(e.lower() for e in any_scheme_entries)

    def __repr__(self) -> str:
        names = sorted(self.https_entries | self.any_scheme_entries)
        return f"AllowedHosts({', '.join(names)})"

    def refusal(self, url: object) -> str | None:
        """Why ``url`` may not be fetched, in words for a person; None when it may."""
        try:
            return self.refusal_of(parse_address(url))
        except BadAddress as bad:
            return str(bad)

    def refusal_of(self, url: yarl.URL) -> str | None:
        """The same judgement for an address already read with ``parse_address``."""
        host = (url.raw_host or "").lower()
        netloc = f"{host}:{url.port}"
        if any(_matches(entry, host, netloc) for entry in self.any_scheme_entries):
            return None
        if any(_matches(entry, host, netloc) for entry in self.https_entries):
            return None if url.scheme == "https" else f"downloads from {host} must use https"
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
    try:
        parsed = yarl.URL(base_url or "")
        host, port = parsed.raw_host, parsed.explicit_port
    except ValueError:  # settings are checked at start-up; a malformed one simply adds no host
        return AllowedHosts(https, plain)
    if host:
        entry = f"{host.lower()}:{port}" if port is not None else host.lower()
        (https if parsed.scheme in ("https", "wss") else plain).append(entry)
    return AllowedHosts(https, plain)


def discord_attachment_hosts(api_base_url: str | None = None) -> AllowedHosts:
    """Discord's CDN, plus the host of ``DISCORD_API_BASE_URL`` when one is configured."""
    return _with_base(DISCORD_ATTACHMENT_HOSTS, api_base_url)


def xai_download_hosts(base_url: str, download_hosts: Iterable[str] = DEFAULT_XAI_DOWNLOAD_HOSTS) -> AllowedHosts:
    """``XAI_DOWNLOAD_HOSTS`` over https, plus the host of ``XAI_BASE_URL``."""
    return _with_base(download_hosts, base_url)


# Query parameters that look like they carry a credential: an address with one is never shown to people.
_SECRET_PARAMETER = re.compile(r"token|key|secret|passw|credential|signature|sig$|auth", re.IGNORECASE)


def shareable_link(url: str, allowed: AllowedHosts | None) -> str | None:
    """``url`` when it may be posted for people to open: a well-formed address on an ``allowed`` host (None:
    any) with no user name, password or credential-looking query parameter; else None."""
    try:
        parsed = parse_address(url)
    except BadAddress:
        return None
    if allowed is not None and allowed.refusal_of(parsed) is not None:
        return None
    if any(_SECRET_PARAMETER.search(name) for name in parsed.query):
        return None
    return url
