"""Getting a finished video onto the bot's disk whole, or saying in words why no whole copy could be had.

xAI's video host may send a copy cut short whose Content-Length matches the short body (so the byte
count looks right), break off mid-transfer, or refuse an address that has gone stale. Every copy is
checked as strictly as an edit input (``media.check_result_video``: every box inside the file, every
stream decodable to its end) before anyone sees it. A damaged or failed copy is fetched again after a
delay, from a fresh address (one more poll of xAI) when the host refused the old one or the old one is
past its lifetime (xAI keeps a video about 24 hours after it said done), and the job fails only when
the retries run out or xAI says the video is gone.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from services.media import media
from services.media.hosts import AllowedHosts
from services.xai.client import Done, Expired, Failed, Moderated, PollResult, XaiClient, XaiError

log = logging.getLogger(__name__)

URL_LIFETIME_S = 24 * 3600.0  # xAI's SDK: "The returned URL is valid for 24 hours"


@dataclass(frozen=True, slots=True)
class FetchSettings:
    max_bytes: int = 200 * 1024 * 1024
    timeout_s: float = 120.0
    allowed_hosts: AllowedHosts | None = None
    retry_delays_s: tuple[float, ...] = (1.0, 5.0, 15.0)  # one more copy after each
    url_lifetime_s: float = URL_LIFETIME_S


@dataclass(frozen=True, slots=True)
class Fetched:
    size: int
    info: media.VideoInfo


class FetchFailed(Exception):
    """No whole copy could be had. ``result`` is xAI's own answer when it ended the job (expired, say);
    otherwise ``str()`` is the sentence for the requester."""

    def __init__(self, message: str, *, result: PollResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class ResultFetcher:
    """Downloads one job's video at a time per call; shared by the whole scheduler."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        client: XaiClient,
        settings: FetchSettings,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.session = session
        self.client = client
        self.settings = settings
        self._clock = clock
        self._sleep = sleep

    async def fetch(self, job_id: int, request_id: str, url: str, dest: Path, *, url_age_s: float) -> Fetched:
        """A whole, checked copy of the video at ``dest``; ``url_age_s`` is how long ago xAI gave ``url``."""
        expires_at = self._clock() + self.settings.url_lifetime_s - max(0.0, url_age_s)
        refresh = False  # ask xAI for a fresh address before the next copy
        refreshed = False  # this copy comes from a fresh address asked for after a refusal
        damaged, problem = False, "the download failed"
        for attempt, delay in enumerate((None, *self.settings.retry_delays_s)):
            if delay is not None:
                log.warning("Job %d: copy %d failed (%s); fetching again in %.1fs", job_id, attempt, problem, delay)
                await self._sleep(delay)
            refreshed = refresh
            if refresh or self._clock() >= expires_at:
                fresh = await self._fresh_address(job_id, request_id)
                if fresh is not None:
                    url, expires_at = fresh, self._clock() + self.settings.url_lifetime_s
                refresh = False
            try:
                size = await media.download(
                    self.session,
                    url,
                    dest,
                    max_bytes=self.settings.max_bytes,
                    timeout_s=self.settings.timeout_s,
                    allowed_hosts=self.settings.allowed_hosts,
                )
                info = await media.check_result_video(dest)
            except media.DownloadError as error:
                _discard(dest)
                damaged, problem = False, str(error)
                if not error.transient:
                    if refreshed:  # a fresh address fared no better: waiting will not change it
                        break
                    refresh = True  # the host refused this address; xAI may hand out a fresh one
                continue
            except media.MediaError:
                _discard(dest)
                damaged, problem = True, "the copy was damaged or cut off"
                continue
            except OSError as error:
                _discard(dest)
                if error.errno == errno.EFBIG:  # a file-size limit: no copy can ever fit
                    problem = _disk_problem(error)
                    raise FetchFailed(f"xAI made the video, but the bot could not download it: {problem}") from None
                damaged, problem = False, _disk_problem(error)
                continue
            return Fetched(size, info)
        if damaged:
            raise FetchFailed(
                "xAI made the video, but the bot could not download a whole copy of it: every copy it got was "
                "damaged or cut off, so nothing was posted. xAI may still charge for it; please try again later."
            )
        raise FetchFailed(f"xAI made the video, but the bot could not download it: {problem}")

    async def _fresh_address(self, job_id: int, request_id: str) -> str | None:
        """Poll xAI once for the video's current address; None when it cannot say now (try the old one)."""
        try:
            result = await self.client.poll(request_id)
        except XaiError as error:
            log.warning("Job %d: could not ask xAI for a fresh video address (%s)", job_id, error)
            return None
        if isinstance(result, Done):
            return result.url
        if isinstance(result, Moderated | Failed | Expired):  # xAI's own verdict: the video is gone
            raise FetchFailed("xAI ended the job while the bot was fetching it.", result=result)
        return None  # pending, or nothing xAI can say right now: try the address the bot has


def _discard(dest: Path) -> None:
    dest.unlink(missing_ok=True)
    dest.with_name(dest.name + ".part").unlink(missing_ok=True)  # a write that failed midway


def _disk_problem(error: OSError) -> str:
    """Words for the requester; a disk problem never shows the server's file paths."""
    if error.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return "the bot's disk is full. Ask whoever runs the bot to free some space, then try again."
    return "the bot could not save the file on its disk. Ask whoever runs the bot to check its storage."
