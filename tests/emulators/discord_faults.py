"""Faults a test injects into the Discord emulator's REST side: errors, 429s, slow answers, lost answers.

A 429 carries what Discord's does (a `Via` header, `retry_after`, `global: false`), so discord.py sleeps and
retries it as against Discord. A mixin of `DiscordEmulator`, which keeps the lists of what is pending.
"""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass
from typing import Any

from .discord_rules import Reply


@dataclass
class _LostAnswer:
    method: str
    pattern: re.Pattern[str]
    remaining: int
    reset: bool


@dataclass
class _Fault:
    method: str
    pattern: re.Pattern[str]
    status: int | None  # None: only delay
    remaining: int
    code: int
    message: str
    retry_after: float | None
    delay: float = 0.0


class Faults:
    """Injected faults, each used up by the requests it matches."""

    _faults: list[_Fault]
    _lost: list[_LostAnswer]

    def fail_next(
        self,
        method: str,
        path_pattern: str,
        status: int,
        *,
        times: int = 1,
        code: int = 0,
        message: str = "",
        retry_after: float | None = None,
    ) -> None:
        """The next `times` requests with `method` ("*" for any) whose path (e.g. "/api/v10/channels/1/messages")
        matches the regex `path_pattern` (re.search) get `status` instead of being handled. A 429 carries a
        `Via` header and `{message, retry_after, global: false}` so discord.py sleeps and retries it."""
        self._faults.append(_Fault(method.upper(), re.compile(path_pattern), status, times, code, message, retry_after))

    def delay_next(self, method: str, path_pattern: str, seconds: float, *, times: int = 1) -> None:
        """The next `times` matching requests (same matching as `fail_next`) are answered normally, but only
        after `seconds` (slow uploads, a sluggish API, acknowledgements that miss the deadline...)."""
        self._faults.append(_Fault(method.upper(), re.compile(path_pattern), None, times, 0, "", None, seconds))

    def lose_next_answer(self, method: str, path_pattern: str, *, times: int = 1, reset: bool = False) -> None:
        """The next `times` matching requests are carried out (a message really is posted), but the client never
        hears the answer: it gets a 500 instead, or with `reset` the connection is dropped. This is Discord
        accepting an upload while the bot's side of the line fails, the case nonces exist for."""
        self._lost.append(_LostAnswer(method.upper(), re.compile(path_pattern), times, reset))

    def _take_lost_answer(self, method: str, path: str) -> _LostAnswer | None:
        for lost in self._lost:
            if lost.method in ("*", method.upper()) and lost.pattern.search(path):
                lost.remaining -= 1
                if lost.remaining <= 0:
                    self._lost.remove(lost)
                return lost
        return None

    async def _apply_fault(self, method: str, path: str) -> Reply | None:
        """Consume the first matching injected fault: sleep for a delay, or return the injected answer."""
        for fault in self._faults:
            if fault.method not in ("*", method.upper()) or not fault.pattern.search(path):
                continue
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.remove(fault)
            if fault.status is None:
                await asyncio.sleep(fault.delay)
                return None
            if fault.status == 429:
                retry_after = 0.05 if fault.retry_after is None else fault.retry_after
                body: dict[str, Any] = {
                    "message": fault.message or "You are being rate limited.",
                    "retry_after": retry_after,
                    "global": False,
                }
                if fault.code:
                    body["code"] = fault.code
                headers = {
                    "Via": "1.1 google",
                    "Retry-After": str(max(1, math.ceil(retry_after))),
                    "X-RateLimit-Scope": "user",
                }
                return Reply(429, body, headers=headers)
            return Reply(fault.status, {"message": fault.message or f"{fault.status}: injected", "code": fault.code})
        return None
