"""``LOG_FORMAT=json``: one JSON object per line, for log shippers (Loki, Elasticsearch, journald's JSON).

Each line has ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``, ``message`` (with the
traceback, if any, in ``exc_info``) and ``job_id`` when the line is about one job. The job id is taken from,
in order: ``extra={"job_id": N}``; the scheduler's ``CURRENT_JOB`` context variable, which its per-job tasks
(``submit-N``, ``poll-N``, ``download-N``, ``deliver-N``, ``notify-N``) set and every task they start
inherits, so each line of a job's work carries it (the xAI client's and discord.py's too) without those parts
knowing about logs; and a message that begins ``Job N``, the bot's own habit. Every text field goes through
the same redactor as the text format, before it is encoded (``redaction.FieldsFormatter``).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from services.process.redaction import FieldsFormatter, Redactor
from services.scheduler.tasks import CURRENT_JOB

_JOB_MESSAGE = re.compile(r"^Job (\d+)\b")


def job_id_of(record: logging.LogRecord) -> int | None:
    """The job a log line is about, if it says or its task shows (see the module's docstring)."""
    given = getattr(record, "job_id", None)
    if isinstance(given, int):
        return given
    current = CURRENT_JOB.get()
    if current is not None:
        return current
    said = _JOB_MESSAGE.match(record.getMessage())
    return int(said.group(1)) if said else None


class JsonFormatter(FieldsFormatter):
    """One JSON object per record; without a redactor (``format``) nothing is masked, so the bot only ever
    uses it behind ``redaction.protect``, which calls ``format_masked``."""

    def format(self, record: logging.LogRecord) -> str:
        return self.format_masked(record, Redactor())

    def format_masked(self, record: logging.LogRecord, redactor: Redactor) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redactor(record.getMessage()),
        }
        job_id = job_id_of(record)
        if job_id is not None:
            line["job_id"] = job_id
        if record.exc_info:
            line["exc_info"] = redactor(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exc_info"] = redactor(record.exc_text)
        if record.stack_info:
            line["stack_info"] = redactor(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False)


def use_json(handlers: list[logging.Handler]) -> None:
    """Switch these handlers to JSON lines (before ``redaction.protect`` puts them behind the redactor)."""
    for handler in handlers:
        handler.setFormatter(JsonFormatter())
