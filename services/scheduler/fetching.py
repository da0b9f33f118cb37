"""Getting a finished video onto the bot's disk whole, or saying in words why no whole copy could be had.

xAI's video host may send a copy cut short whose Content-Length matches the short body (so the byte
count looks right), break off mid-transfer, or refuse an address that has gone stale. Every copy is
checked as strictly as an edit input (``probing.check_result_video``: every box inside the file, every
stream decodable to its end) before anyone sees it. A damaged or failed copy is fetched again after a
delay, from a fresh address (one more poll of xAI) when the host refused the old one or the old one is
past its lifetime (xAI keeps a video about 24 hours after it said done), and the job fails only when
the retries run out or xAI says the video is gone.
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from services.media import downloading, probing
from services.scheduler.retrying import retrying
from services.scheduler.settings import Clocks, SchedulerSettings
from services.xai.answers import Done, Expired, Failed, Moderated, PollResult
from services.xai.client import XaiClient
from services.xai.errors import XaiError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Fetched:
    size: int
    info: probing.VideoInfo


class FetchFailed(Exception):
    """No whole copy could be had. ``result`` is xAI's own answer when it ended the job (expired, say);
    otherwise ``str()`` is the sentence for the requester."""

    def __init__(self, message: str, *, result: PollResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class ResultFetcher:
    """Downloads one job's video at a time per call; shared by the whole scheduler."""

    def __init__(
        self, session: aiohttp.ClientSession, client: XaiClient, settings: SchedulerSettings, clocks: Clocks
    ) -> None:
        self.session = session
        self.client = client
        self.settings = settings
        self.clocks = clocks

    async def fetch(self, job_id: int, request_id: str, url: str, dest: Path, *, url_age_s: float) -> Fetched:
        """A whole, checked copy of the video at ``dest``; ``url_age_s`` is how long ago xAI gave ``url``."""
        lifetime_s = self.settings.video_url_lifetime_s
        expires_at = self.clocks.monotonic() + lifetime_s - max(0.0, url_age_s)
        refresh = False  # ask xAI for a fresh address before the next copy
        refreshed = False  # this copy comes from a fresh address asked for after a refusal
        damaged, problem = False, "the download failed"
        async for attempt in retrying(self.settings.download_retry_delays_s, sleep=self.clocks.sleep):
            refreshed = refresh
            if refresh or self.clocks.monotonic() >= expires_at:
                fresh = await self._fresh_address(job_id, request_id)
                if fresh is not None:
                    url, expires_at = fresh, self.clocks.monotonic() + lifetime_s
                refresh = False
            try:
                size = await downloading.download(
                    self.session,
                    url,
                    dest,
                    max_bytes=self.settings.max_download_bytes,
                    timeout_s=self.settings.download_timeout_s,
                    allowed_hosts=self.settings.download_hosts,
                )
                info = await probing.check_result_video(dest)
            except downloading.DownloadError as error:
                _discard(dest)
                damaged, problem = False, str(error)
                if not error.transient:
                    if refreshed:  # a fresh address fared no better: waiting will not change it
                        break
                    refresh = True  # the host refused this address; xAI may hand out a fresh one
            except probing.MediaError:
                _discard(dest)
                damaged, problem = True, "the copy was damaged or cut off"
            except OSError as error:
                _discard(dest)
                if error.errno == errno.EFBIG:  # a file-size limit: no copy can ever fit
                    problem = _disk_problem(error)
                    raise FetchFailed(f"xAI made the video, but the bot could not download it: {problem}") from None
                damaged, problem = False, _disk_problem(error)
            else:
                return Fetched(size, info)
            if not attempt.last:
                number, delay = attempt.number, attempt.next_delay_s
                log.warning("Job %d: copy %d failed (%s); fetching again in %.1fs", job_id, number, problem, delay)
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
