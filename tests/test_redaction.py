"""The log redactor: configured secrets and token-shaped text never reach a log line."""

from __future__ import annotations

import io
import logging

from services.process.redaction import MASK, RedactingFormatter, Redactor, protect

TOKEN = "MTA5ODc2NTQzMjEwOTg3NjU0.GxYzAb.abcdefghijklmnopqrstuvwxyz012345"
KEY = "xai-0123456789abcdefghijklmnopqrstuvwxyz"
INTERACTION_TOKEN = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDEyMzQ1Njc4OmFiY2RlZmdo"


def test_configured_secrets_are_masked_wherever_they_appear() -> None:
    """The xAI key and the Discord token, inside any text."""
    redact = Redactor([KEY, TOKEN])
    text = redact(f"key={KEY!r} then {TOKEN}, {KEY}{KEY}")
    assert KEY not in text and TOKEN not in text and MASK in text


def test_interaction_tokens_in_webhook_and_callback_urls_are_masked() -> None:
    """discord.py logs the URLs of interaction webhooks and callbacks at DEBUG."""
    redact = Redactor()
    for url in (
        f"PATCH https://discord.com/api/v10/webhooks/123456/{INTERACTION_TOKEN}/messages/@original",
        f"POST https://discord.com/api/v10/interactions/987654/{INTERACTION_TOKEN}/callback?with_response=1",
        f"POST http://127.0.0.1:5555/api/v10/webhooks/123456/{INTERACTION_TOKEN}?wait=1",
    ):
        text = redact(url)
        assert INTERACTION_TOKEN not in text and MASK in text
        assert "/123456/" in text or "/987654/" in text  # the ids stay, for debugging


def test_token_fields_in_payloads_and_reprs_are_masked() -> None:
    """Gateway events are logged as Python dicts; REST bodies as JSON."""
    redact = Redactor()
    for text in (
        f"WebSocket Event: {{'t': 'INTERACTION_CREATE', 'd': {{'token': '{INTERACTION_TOKEN}', 'id': '1'}}}}",
        f'{{"token": "{INTERACTION_TOKEN}", "type": 2}}',
        f"https://x.example/cb?token={INTERACTION_TOKEN}&a=1",
    ):
        assert INTERACTION_TOKEN not in redact(text)


def test_authorization_values_are_masked() -> None:
    """Headers printed in any form, and bare Bot/Bearer credentials."""
    redact = Redactor()
    for text in (
        f"{{'Authorization': 'Bot {TOKEN}'}}",
        f"Authorization: Bearer {KEY}",
        f"sent Bearer {KEY} to xAI",
        f"login with Bot {TOKEN}",
    ):
        out = redact(text)
        assert TOKEN not in out and KEY not in out, out


def test_signed_url_signatures_are_masked() -> None:
    """A signed CDN link's signature is a bearer credential for the file."""
    out = Redactor()("https://cdn.discordapp.com/attachments/1/2/a.png?ex=65&is=64&hm=deadbeefcafe1234&")
    assert "deadbeefcafe1234" not in out and "cdn.discordapp.com/attachments/1/2/a.png" in out


def test_ordinary_text_is_left_alone() -> None:
    """Job ids, statuses and plain words pass through unchanged."""
    text = "Job 42: xAI request 1f2e finished; Bot is ready; interaction token expired for job 7"
    assert Redactor([KEY, TOKEN])(text) == text


def test_the_formatter_masks_messages_arguments_and_tracebacks() -> None:
    """Whatever the inner formatter produces, tracebacks included, is masked; protect() is idempotent."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    protect([handler], Redactor([KEY]))
    protect([handler], Redactor([KEY, TOKEN]))
    assert isinstance(handler.formatter, RedactingFormatter)
    assert not isinstance(handler.formatter.inner, RedactingFormatter)
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("calling %s with %s", f"/webhooks/1/{INTERACTION_TOKEN}", KEY)
        try:
            raise RuntimeError(f"boom {TOKEN}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    written = stream.getvalue()
    assert "WARNING calling" in written and "RuntimeError" in written
    for secret in (KEY, TOKEN, INTERACTION_TOKEN):
        assert secret not in written
