"""Which hosts downloads may come from: Discord's CDN for attachments, xAI's for videos, https only."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from services.config import ConfigError, load_settings
from services.media import downloading
from services.media.hosts import discord_attachment_hosts, xai_download_hosts
from tests.loopback import serving


def test_attachments_come_only_from_discords_cdn_over_https() -> None:
    """cdn.discordapp.com and media.discordapp.net over https; nothing else, no plain http."""
    rules = discord_attachment_hosts("https://discord.com/api/v10")
    assert rules.refusal("https://cdn.discordapp.com/attachments/1/2/a.png?ex=1&hm=2") is None
    assert rules.refusal("https://media.discordapp.net/attachments/1/2/a.png") is None
    assert (
        rules.refusal("http://cdn.discordapp.com/attachments/1/2/a.png")
        == "downloads from cdn.discordapp.com must use https"
    )
    assert rules.refusal("https://evil.example/a.png") == "downloads from evil.example are not allowed"
    assert rules.refusal("https://cdn.discordapp.com.evil.example/a.png") is not None
    assert rules.refusal("file:///etc/passwd") == "the address is not an http(s) URL"


def test_a_configured_api_proxy_is_trusted_on_its_own_port_only() -> None:
    """DISCORD_API_BASE_URL's host is allowed with its scheme and port; another port on it is not."""
    rules = discord_attachment_hosts("http://127.0.0.1:5000/api/v10")
    assert rules.refusal("http://127.0.0.1:5000/attachments/1/a.png") is None
    assert rules.refusal("http://127.0.0.1:5001/attachments/1/a.png") is not None
    assert rules.refusal("http://localhost:5000/attachments/1/a.png") is not None


def test_videos_come_from_xais_hosts() -> None:
    """vidgen.x.ai by default; wildcard entries cover subdomains; XAI_BASE_URL's host is trusted as given."""
    assert xai_download_hosts("https://api.x.ai/v1").refusal("https://vidgen.x.ai/b/v.mp4") is None
    assert xai_download_hosts("https://api.x.ai/v1").refusal("https://other.example/v.mp4") is not None
    assert xai_download_hosts("https://api.x.ai/v1").refusal("http://api.x.ai/v.mp4") is not None
    wild = xai_download_hosts("https://api.x.ai/v1", ["*.x.ai"])
    assert wild.refusal("https://eu.vidgen.x.ai/v.mp4") is None and wild.refusal("https://x.ai.evil.io/v") is not None


def test_xai_download_hosts_is_read_and_checked() -> None:
    """A comma-separated list of host names; anything else is a ConfigError naming the variable."""
    base = {"XAI_API_KEY": "k" * 10}
    assert load_settings(base, need_discord=False).xai.download_hosts == ("vidgen.x.ai",)
    settings = load_settings({**base, "XAI_DOWNLOAD_HOSTS": " vidgen.x.ai, *.example.com "}, need_discord=False)
    assert settings.xai.download_hosts == ("vidgen.x.ai", "*.example.com")
    for bad in ("https://vidgen.x.ai", "a b", ",", "*"):
        with pytest.raises(ConfigError, match="XAI_DOWNLOAD_HOSTS"):
            load_settings({**base, "XAI_DOWNLOAD_HOSTS": bad}, need_discord=False)


async def test_a_redirect_to_a_foreign_host_is_refused_before_it_is_followed(tmp_path: Path) -> None:
    """The allow-list applies to every hop: a redirect elsewhere is never requested."""
    hits: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        if request.path == "/start":
            raise web.HTTPFound(f"http://localhost:{request.url.port}/elsewhere")
        if request.path == "/hop":
            raise web.HTTPFound("/ok")
        return web.Response(body=b"data")

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handler)
    async with serving(app) as host, aiohttp.ClientSession() as session:
        rules = xai_download_hosts(f"{host}/v1")
        with pytest.raises(downloading.DownloadError, match="localhost are not allowed"):
            await downloading.download(session, f"{host}/start", tmp_path / "a", max_bytes=100, allowed_hosts=rules)
        size = await downloading.download(session, f"{host}/hop", tmp_path / "b", max_bytes=100, allowed_hosts=rules)
    assert hits == ["/start", "/hop", "/ok"] and size == 4
    assert not (tmp_path / "a").exists() and not (tmp_path / "a.part").exists()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://127.0.0.1:99999/x.mp4", "not a valid URL"),
        ("https://vidgen.x.ai:0/x.mp4", "invalid port"),
        ("ftp://vidgen.x.ai/x.mp4", "not an http(s) URL"),
        ("/xai-vidgen-bucket/x.mp4", "not an http(s) URL"),
        ("", "missing"),
        ("https://vidgen.x.ai/a b.mp4", "spaces"),
        ("https://vidgen.x.ai/" + "a" * 9000, "too long"),
        ("https://user:pw@vidgen.x.ai/x.mp4", "user name or password"),
        ("https://evil.com\\@vidgen.x.ai/a", "not a valid URL"),
        ("https://vіdgen.x.ai/x.mp4", "xn--"),  # a look-alike host is shown as what it really is
        ("https://vid%20gen.x.ai/x.mp4", "invalid host"),
    ],
)
def test_strange_video_addresses_are_refused_in_words(url: str, words: str) -> None:
    """Each kind of unusable address gets its own plain sentence, before any connection."""
    reason = xai_download_hosts("https://api.x.ai/v1").refusal(url)
    assert reason is not None and words in reason
