"""Reading raw replies (pure): what every caller of `Redis.run` needs."""

from __future__ import annotations

from typing import Any


def raise_errors(replies: list[Any]) -> list[Any]:
    """The replies, unless one is an error reply: then that error is raised."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def text(value: bytes | str) -> str:
    """A bulk string reply as text."""
    return value.decode() if isinstance(value, bytes) else value
