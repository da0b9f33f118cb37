"""Echoed text can never ping, link or format."""

from __future__ import annotations

from services.jobs.wording import safe_echo


def test_mentions_are_broken() -> None:
    """@everyone, @here, user and role mentions lose their power."""
    echoed = safe_echo("hi @everyone and @here <@123> <@&456>")
    assert "@everyone" not in echoed and "@here" not in echoed
    assert "<@123>" not in echoed and "<@&456>" not in echoed


def test_markdown_is_escaped_and_long_text_truncated() -> None:
    """Formatting characters are escaped; text is cut with an ellipsis."""
    assert safe_echo("**bold** [link](http://x)") == r"\*\*bold\*\* \[link\]\(http\://x\)"
    assert safe_echo("x" * 50, limit=10) == "x" * 9 + "…"
