"""HTTPS_PROXY / HTTP_PROXY / NO_PROXY for every HTTP client the bot makes, and nothing else from the environment.

aiohttp's ``trust_env=True`` would read these variables, but it also reads ``~/.netrc`` (or ``$NETRC``) and
sends what it finds as Basic auth to *every* host: with a netrc ``default`` line (common on build hosts)
each xAI call fails with a ValueError (it cannot combine that with the Bearer key), and downloads carry
the admin's login to the video host. So no session here trusts the environment: each one is made by
``session()``, which hands aiohttp the proxy explicitly, read from the environment by ``proxy_for``.
Credentials for a proxy go in its URL (``http://user:password@proxy:3128``); netrc is never read.

A session that talks to one host (the xAI client, the Discord gateway lookup) gets that host's proxy as
its default; a session that fetches from many hosts (downloads, ``check``'s Discord calls) has none, and
each request names its own with ``address_for``.
"""

from __future__ import annotations

import contextlib
import os
import urllib.request
import warnings
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiohttp
import yarl

from services.config import PROXY_VARIABLES


@dataclass(frozen=True, slots=True)
class Proxy:
    """The proxy for one URL: its address without credentials, and the credentials apart (discord.py wants both)."""

    url: str | None = None
    auth: aiohttp.BasicAuth | None = None

    @property
    def shown(self) -> str:
        """The proxy's address without its credentials, for the log."""
        if self.url is None:
            return "none"
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"

    @property
    def address(self) -> yarl.URL | None:
        """The proxy as aiohttp's ``proxy=`` takes it, credentials in the URL (its ``proxy_auth=`` is deprecated)."""
        if self.url is None:
            return None
        address = yarl.URL(self.url)
        if self.auth is not None:
            address = address.with_user(self.auth.login).with_password(self.auth.password)
        return address


def proxy_for(url: str | yarl.URL) -> Proxy:
    """HTTPS_PROXY for an https URL (HTTP_PROXY for http), unless NO_PROXY covers its host.

    Only the environment is read (never the macOS or Windows system settings), so this is quick enough
    to call for every request on the event loop.
    """
    parts = urlsplit(str(url))
    scheme = {"wss": "https", "ws": "http"}.get(parts.scheme, parts.scheme)
    proxies = urllib.request.getproxies_environment()
    chosen = proxies.get(scheme)
    # With a proxy variable set, urllib's proxy_bypass reads NO_PROXY on every platform.
    if not chosen or not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return Proxy()
    proxy = urlsplit(chosen if "://" in chosen else f"http://{chosen}")
    auth = None
    if proxy.username is not None:
        with warnings.catch_warnings():  # deprecated in aiohttp 3.14, yet discord.py's proxy_auth takes only this
            warnings.simplefilter("ignore", DeprecationWarning)
            auth = aiohttp.BasicAuth(unquote(proxy.username), unquote(proxy.password or ""))
    host = proxy.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if proxy.port:
        netloc = f"{netloc}:{proxy.port}"
    return Proxy(url=f"{proxy.scheme}://{netloc}", auth=auth)


def address_for(url: str | yarl.URL) -> yarl.URL | None:
    """The ``proxy=`` for one request to ``url`` (None: go direct)."""
    return proxy_for(url).address


def session(*, reaching: str | None = None, timeout: aiohttp.ClientTimeout | None = None) -> aiohttp.ClientSession:
    """A session that never reads netrc or the environment itself; ``reaching`` is the one host it talks to.

    Without ``reaching`` it has no proxy of its own, so every request must pass ``proxy=address_for(url)``
    (a request's ``proxy=None`` would fall back to a session default, which is why there is none).
    """
    default = address_for(reaching) if reaching is not None else None
    if timeout is None:
        return aiohttp.ClientSession(trust_env=False, proxy=default)
    return aiohttp.ClientSession(trust_env=False, proxy=default, timeout=timeout)


def proxy_passwords() -> list[str]:
    """Passwords in the proxy variables (http://user:password@proxy), for the log redactor."""
    found: list[str] = []
    for name, value in os.environ.items():
        if name.upper() in PROXY_VARIABLES and "@" in value:
            with contextlib.suppress(ValueError):
                password = urlsplit(value if "://" in value else f"http://{value}").password
                if password:
                    found.append(unquote(password))
    return found
