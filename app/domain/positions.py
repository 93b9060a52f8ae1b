"""A change-log position (pure): where an account's log, a snapshot or a client's state stands.

One type for every reader: the snapshot cache validates rendered responses
against it, the live relay tracks each subscriber's with it, and its text
forms are the wire: `<epoch>:<cursor>` is the SSE event id and the `since` a
client sends back; quoted (plus a format variant) it is the ETag of
`GET /sessions/active`. A frozen msgspec Struct: built, compared and hashed in
C on every read (a NamedTuple costs five times as much to build)."""

from __future__ import annotations

import msgspec


class BadPosition(ValueError):
    pass


class Position(msgspec.Struct, frozen=True, gc=False):
    """An account's change-log epoch and cursor.

    `epoch` None: Redis holds no epoch for the account yet (or lost it); such a
    position is never current for anything. A parsed position always has a
    text epoch, empty for a bare cursor, which matches no real epoch."""

    epoch: str | None
    cursor: int

    def __str__(self) -> str:
        return f"{self.epoch}:{self.cursor}"

    def etag(self, variant: str = "") -> str:
        return f'"{self}{";" + variant if variant else ""}"'

    def covers(self, other: Position) -> bool:
        """At least as new as `other`, in the same log incarnation (both known)."""
        return other.epoch is not None and self.epoch == other.epoch and self.cursor >= other.cursor

    @classmethod
    def parse(cls, text: str) -> Position:
        """`E:C`, also quoted or weak (`W/"E:C"`) as an ETag. A bare cursor has
        no epoch: it parses, but never matches one, so it always resets."""
        value = text.strip()
        value = value.removeprefix("W/")
        value = value.strip('"').split(";", 1)[0]
        epoch, _, cursor = value.rpartition(":")
        if not cursor.isdigit() or len(cursor) > 19:
            raise BadPosition(f"not a position (expected <epoch>:<cursor>): {text[:80]!r}")
        return cls(epoch, int(cursor))


def parse_since(text: str | None) -> Position | None:
    if text is None or not text.strip():
        return None
    return Position.parse(text)


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison against an If-None-Match list."""
    if not if_none_match:
        return False
    wanted = etag.removeprefix("W/")
    return any(t.strip() == "*" or t.strip().removeprefix("W/") == wanted for t in if_none_match.split(","))
