"""The digest of a viewer's state (pure): a 64-bit, order-independent hash of its sessions.

docs/protocol.md ("State digest") is the definition another language implements:

- a session's hash is the first 8 bytes, read as an unsigned big-endian integer, of the
  SHA-256 of the UTF-8 canonical JSON of the one-member object `{"<id>": <session>}`;
- canonical JSON: no whitespace, object members sorted by key in Unicode code point order,
  strings escaped as `JSON.stringify` escapes them (msgspec writes the same bytes);
- the state's digest is the sum of its sessions' hashes modulo 2^64 (0 for no sessions),
  on the wire 16 lowercase hex digits.

A sum is kept up to date by adding and subtracting: a change that moves a session out of,
within, or into a view changes that view's digest by `delta` (the change entry carries
the session's hash before and after), so the relay never rehashes a state."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

MASK = (1 << 64) - 1

_canonical = msgspec.json.Encoder(order="sorted").encode  # struct fields and dict keys by code point
_decode = msgspec.json.Decoder().decode


def canonical(value: Any) -> bytes:
    """The canonical JSON of a wire value (a SessionInfo struct or its builtins form)."""
    return _canonical(value)


def session_hash(session_id: str, session: Any) -> int:
    """The hash of one session of a state, from its wire form (a struct, or its builtins)."""
    return int.from_bytes(hashlib.sha256(_canonical({session_id: session})).digest()[:8], "big")


def blob_hash(session_id: str, blob: bytes) -> int:
    """`session_hash` of a session stored as wire JSON bytes."""
    return session_hash(session_id, _decode(blob))


def combine(hashes: Iterable[int]) -> int:
    """The digest of a state whose sessions have these hashes."""
    return sum(hashes) & MASK


def of_state(state: Mapping[str, Any]) -> int:
    """The digest of a whole state, `{session id: wire JSON}`, from scratch."""
    return combine(session_hash(sid, session) for sid, session in state.items())


def of_blobs(blobs: Mapping[str, bytes]) -> int:
    """The digest of a state held as stored wire JSON, `{session id: bytes}` (a snapshot)."""
    return combine(blob_hash(sid, blob) for sid, blob in blobs.items())


def delta(before: int | None, after: int | None, seen_before: bool, seen_after: bool) -> int | None:
    """What one change adds to a view's digest: minus the session's old hash if the view
    had it, plus its new one if it has it now; None if a hash it needs is not known."""
    out = 0
    if seen_before:
        if before is None:
            return None
        out -= before
    if seen_after:
        if after is None:
            return None
        out += after
    return out & MASK


def advance(digest: int | None, change: int | None) -> int | None:
    """A digest after a change's `delta` (unknown stays unknown)."""
    if digest is None or change is None:
        return None
    return (digest + change) & MASK


def text(digest: int) -> str:
    """The wire form: 16 lowercase hex digits."""
    return f"{digest:016x}"
