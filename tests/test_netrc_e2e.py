"""A netrc file (``~/.netrc`` or ``$NETRC``) is never read: its login goes to no host, and nothing breaks beside it.

aiohttp's ``trust_env=True`` would send a netrc ``default`` login as Basic auth to every host: each xAI
call then raised a bare ValueError (Bearer key and Basic auth together) and left the job in "submitting",
``check`` ended in a traceback, and downloads carried the admin's login to the video host.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from services.jobs.models import JobStatus
from services.media import downloading
from services.process import proxies
from tests.botprocess import run_command
from tests.emulators.xai_emulator import XaiEmulator
from tests.harness import BotRig
from tests.loopback import serving
from tests.recording_proxy import RecordingProxy

NETRC_PASSWORD = "s3cret-artifactory"


@pytest.fixture
def netrc_file(tmp_path: Path) -> Path:
    """A netrc with a ``default`` line, as build hosts often have: it matches every host."""
    netrc = tmp_path / "netrc"
    netrc.write_text(f"default login build-bot password {NETRC_PASSWORD}\n")
    netrc.chmod(0o600)
    return netrc


@pytest.fixture
async def proxy() -> AsyncIterator[RecordingProxy]:
    async with RecordingProxy() as recording:
        yield recording


def _generate_env(xai: XaiEmulator, tmp_path: Path, netrc: Path, **extra: str) -> dict[str, str]:
    return {
        "XAI_API_KEY": xai.api_key,
        "XAI_BASE_URL": xai.base_url,
        "XAI_FIRST_POLL_SECONDS": "0.1",
        "XAI_MAX_REQUESTS_PER_MINUTE": "6000",
        "DATABASE_PATH": str(tmp_path / "jobs.sqlite3"),
        "NETRC": str(netrc),
        **extra,
    }


async def test_generate_beside_a_netrc_default_line_makes_the_video(
    xai: XaiEmulator, tmp_path: Path, netrc_file: Path
) -> None:
    """`generate` with $NETRC set: every xAI call is made with the key alone, and the video is saved."""
    env = _generate_env(xai, tmp_path, netrc_file)
    status, _, err = await run_command("generate", "a fox", "--out", "fox.mp4", env=env, cwd=tmp_path)
    assert status == 0, err
    assert "Traceback" not in err and "ValueError" not in err
    assert xai.submits() and all(record.auth_ok for record in xai.requests)
    assert (tmp_path / "fox.mp4").read_bytes() == xai.output_video


async def test_no_request_through_the_proxy_carries_the_netrc_login(
    proxy: RecordingProxy, xai: XaiEmulator, tmp_path: Path, netrc_file: Path
) -> None:
    """Through HTTP_PROXY: xAI gets only its Bearer key, the video host and the proxy get no netrc login."""
    env = _generate_env(xai, tmp_path, netrc_file, HTTP_PROXY=proxy.url)
    status, _, err = await run_command("generate", "a fox", "--out", "fox.mp4", env=env, cwd=tmp_path)
    assert status == 0, err
    api = [f for f in proxy.seen if "/v1/videos" in f.url]
    downloads = [f for f in proxy.seen if "/xai-vidgen-bucket/" in f.url]
    assert api and downloads
    assert {f.authorization for f in api} == {f"Bearer {xai.api_key}"}
    assert {f.authorization for f in downloads} == {None}
    assert {f.proxy_authorization for f in proxy.seen} == {None}


async def test_check_beside_a_netrc_default_line_passes_without_a_traceback(
    rig: BotRig, tmp_path: Path, netrc_file: Path
) -> None:
    """`check` asks Discord (Bot token) and xAI (Bearer key) as usual; the netrc is not mixed in."""
    env = rig.environment(NETRC=str(netrc_file))
    status, out, err = await run_command("check", env=env, cwd=rig.tmp_path)
    assert status == 0, out + err
    assert "Traceback" not in err and "✓ xAI: the key works" in out and "✓ Discord: logged in as" in out


async def test_the_bot_delivers_beside_a_netrc_default_line(
    rig: BotRig, netrc_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The running bot's sessions (xAI and downloads, from open_runtime) ignore $NETRC: /video is delivered."""
    monkeypatch.setenv("NETRC", str(netrc_file))
    async with rig.running():
        await rig.discord.slash("video", {"prompt": "a lantern in fog"})
        await rig.delivered_video()
        job = await rig.wait_until_terminal()
    assert job.status is JobStatus.DELIVERED
    assert all(record.auth_ok for record in rig.xai.requests)


async def test_a_download_sends_no_credentials_to_the_host(
    tmp_path: Path, netrc_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """downloading.download through the bot's own session: the host sees no Authorization header at all."""
    monkeypatch.setenv("NETRC", str(netrc_file))
    seen: list[str | None] = []

    async def serve(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.Response(body=b"x" * 10)

    app = web.Application()
    app.router.add_get("/v.mp4", serve)
    async with serving(app) as host, proxies.session() as session:
        await downloading.download(session, f"{host}/v.mp4", tmp_path / "v.mp4", max_bytes=100)
    assert seen == [None]


def test_every_http_session_of_the_bot_is_made_by_proxies_session() -> None:
    """No module but services/process/proxies.py builds an aiohttp session, so none can turn netrc back on."""
    root = Path(__file__).resolve().parent.parent
    sources = [*root.glob("services/**/*.py"), *root.glob("cogs/*.py"), root / "bot.py"]
    builders = [
        path.name for path in sources if "ClientSession(" in path.read_text() or "trust_env=True" in path.read_text()
    ]
    assert builders == ["proxies.py"]
