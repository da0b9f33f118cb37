"""What the bot still keeps of a result, in words: why its files are gone, when they are.

Shared by the result buttons (cogs/results.py, cogs/extending.py) and ``/show`` (cogs/show.py), so each
says the same true sentence about a video whose files were swept, deleted or forgotten.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from services.jobs.models import Job
from services.jobs.validation import InputError
from services.media.retention import kept_for

if TYPE_CHECKING:
    from bot import GrokVideoBot

FORGOTTEN_TEXT = "This video was forgotten at a moderator's request: its prompt and files are erased"


def gone_reason(bot: GrokVideoBot, job: Job) -> str | None:
    """Why the bot no longer has this job's files, in words (no full stop), or None when it never removed them."""
    if job.forgotten_at is not None:
        return FORGOTTEN_TEXT
    if job.media_purged_at is None:
        return None
    if job.deleted_at is not None:
        return "This video was deleted, and the bot's copy of its files with it"
    days = bot.settings.retention.keep_days
    if days is None:  # removed under an earlier MEDIA_RETENTION_DAYS
        return "This video's files were deleted, as this bot keeps them only for a while"
    return f"This video's files were deleted after {kept_for(days)}, as this bot keeps them only that long"


async def read_output(bot: GrokVideoBot, job: Job, why_not: Callable[[Job | None], str | None], missing: str) -> bytes:
    """The result's file, for a follow-up made from it; gone meanwhile (a sweep between the form and its submit)
    raises InputError with ``why_not``'s reason for the job as it is now, else ``missing``."""
    try:
        if not job.output_path:
            raise FileNotFoundError
        return await asyncio.to_thread(Path(job.output_path).read_bytes)
    except OSError:
        fresh = await bot.runtime.store.jobs.get(job.id)
        raise InputError(why_not(fresh) or missing) from None
