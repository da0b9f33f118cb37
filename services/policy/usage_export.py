"""``/usage``'s report and its CSV, built in a thread and sized for what Discord will take.

A server with a long history has a lot to add up: for 100,000 jobs the report and the CSV take
about a second of pure Python, which on the event loop would freeze every status update, button
and heartbeat meanwhile, and the CSV comes to some 17 MB, over what Discord accepts for one file
(10 MiB unless the server is boosted). So the arithmetic and the writing run in a worker thread;
a CSV over the upload limit is attached zipped (CSV text shrinks well), and when even the zip is
too big the answer says so and how to ask for less.
"""

from __future__ import annotations

import asyncio
import io
import zipfile
from dataclasses import dataclass

from services.jobs.models import Job
from services.media.sizes import describe_size
from services.policy.guild_policy import GuildPolicy
from services.policy.usage import Period, UsageReport, build_report, to_csv


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    data: bytes


@dataclass(frozen=True, slots=True)
class UsageExport:
    """The report, and the CSV (or its zip) when there is one that fits the upload limit."""

    report: UsageReport
    table: Attachment | None = None
    zipped: bool = False
    csv_bytes: int = 0  # the CSV's own size, zipped or not
    zip_bytes: int | None = None  # the zip's size, when the CSV had to be zipped

    def note(self, upload_limit: int) -> str | None:
        """What to tell the moderator about the CSV, when it is not simply attached."""
        limit = describe_size(upload_limit)
        if self.zipped:
            return (
                f"📦 The CSV ({describe_size(self.csv_bytes)}) is over the {limit} Discord lets me attach here, "
                "so it is attached zipped."
            )
        if self.table is None and self.zip_bytes is not None:
            return (
                f"⚠️ The CSV of these {self.report.jobs} jobs is too large to attach, even zipped "
                f"({describe_size(self.zip_bytes)}; Discord lets me attach {limit} here). For the CSV, pick a "
                "shorter period, or one member with the `user` option."
            )
        return None


async def export_usage(
    jobs: list[Job], policy: GuildPolicy, period: Period, *, now: float, stem: str, upload_limit: int
) -> UsageExport:
    """The report and the CSV for ``jobs``, worked out in a thread (the jobs are only read there)."""
    return await asyncio.to_thread(_export, jobs, policy, period, now, stem, upload_limit)


def _export(
    jobs: list[Job], policy: GuildPolicy, period: Period, now: float, stem: str, upload_limit: int
) -> UsageExport:
    report = build_report(jobs, policy, period, now=now)
    if not jobs:
        return UsageExport(report)
    table = to_csv(jobs, policy)
    if len(table) <= upload_limit:
        return UsageExport(report, Attachment(f"{stem}.csv", table), csv_bytes=len(table))
    packed = _zip(f"{stem}.csv", table)
    if len(packed) <= upload_limit:
        return UsageExport(report, Attachment(f"{stem}.zip", packed), True, len(table), len(packed))
    return UsageExport(report, None, False, len(table), len(packed))


def _zip(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()
