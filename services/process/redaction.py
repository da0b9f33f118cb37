"""Masking secrets in everything the bot logs.

The settings already hide the xAI key and the Discord token from ``repr``; this module catches the rest:
libraries log request URLs and raw payloads at DEBUG, and Discord's interaction tokens ride in those
URLs (``/webhooks/<app>/<token>``, ``/interactions/<id>/<token>/callback``) and in gateway events
(``'token': '...'``). A formatter wrapper masks them in the final text, tracebacks included, so no
level and no handler that the bot sets up can write one out.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

MASK = "[redacted]"

# Each pattern keeps its first group and masks what follows it.
_PATTERNS: tuple[re.Pattern[str], ...] = (
    # Interaction webhooks and callbacks: the path segment after the application / interaction id.
    re.compile(r"(/webhooks/\d+/)[^/\s?'\"]+"),
    re.compile(r"(/interactions/\d+/)[^/\s?'\"]+"),
    # "token": "...", 'token': '...', token=... (JSON, Python reprs, query strings and form fields).
    re.compile(
        r"""((?:['"]?)\b(?:token|access_token|refresh_token|api_key|apikey|client_secret|password)\b['"]?\s*[:=]\s*['"]?)"""
        r"""[^'"\s&,}]+""",
        re.IGNORECASE,
    ),
    # Authorization headers and their values, however they are printed.
    re.compile(r"""(\bAuthorization['"]?\s*[:=]\s*['"]?)(?:(?:Bot|Bearer)\s+)?[^'"\s,}]+""", re.IGNORECASE),
    re.compile(r"(\b(?:Bot|Bearer)\s+)[A-Za-z0-9._~+/=-]{16,}"),
    # Signatures of signed URLs (Discord's CDN and cloud buckets): whoever has them can fetch the file.
    re.compile(r"([?&](?:hm|sig|signature|x-goog-signature|x-amz-signature)=)[^&\s'\"]+", re.IGNORECASE),
)


class Redactor:
    """Masks the configured secrets, and anything shaped like a token, in a piece of text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole. Very short values are not
        # masked: they would shred ordinary words and cannot be real keys anyway.
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + MASK, text)
        return text


class RedactingFormatter(logging.Formatter):
    """Formats with the handler's own formatter, then masks the result (message, args and traceback)."""

    def __init__(self, inner: logging.Formatter | None, redactor: Redactor) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        if isinstance(self.inner, FieldsFormatter):  # JSON: masked field by field, so the quoting stays whole
            return self.inner.format_masked(record, self.redactor)
        return self.redactor(self.inner.format(record))


class FieldsFormatter(logging.Formatter):
    """A formatter that puts text into a structure (JSON): it masks each piece before encoding it, because
    masking the encoded text could cut an escape in two (services/observe/logformat.py)."""

    def format_masked(self, record: logging.LogRecord, redactor: Redactor) -> str:
        raise NotImplementedError


def protect(handlers: Iterable[logging.Handler], redactor: Redactor) -> None:
    """Put every handler's formatter behind the redactor (once; calling again swaps the redactor)."""
    for handler in handlers:
        current = handler.formatter
        inner = current.inner if isinstance(current, RedactingFormatter) else current
        handler.setFormatter(RedactingFormatter(inner, redactor))
