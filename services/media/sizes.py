"""How a file's size is said to a person: KiB below a mebibyte, MiB with one decimal above."""

from __future__ import annotations


def describe_size(n: int) -> str:
    if n < 1024 * 1024:
        return f"{n / 1024:.0f} KiB"
    return f"{n / 1024 / 1024:.1f} MiB"
