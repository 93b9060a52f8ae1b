"""A committed change as it travels: in the change log, on pub/sub, to the hub (pure).

One entry per commit. It carries the session's new wire JSON, the JSON Patch
from its previous wire JSON, and who could see it before and after, so a
subscriber can build any user's patch without reading Redis again."""

from __future__ import annotations

from typing import Any

import msgspec

from app.domain import digest
from app.domain.dtos import SessionInfo
from app.domain.json_patch import Op, diff
from app.domain.visibility import Visibility


# Entries, changes and their visibilities are never tracked by the cyclic collector (`gc=False`, as
# `Viewer`): they hold only strings, numbers and JSON lists and dicts, so they cannot be part of a
# cycle, and a live feed keeps its last relayed changes for resumes, which every full collection
# walked (app.gc_policy): at 10,000 sockets the objects frozen during the push phases fell by 30%.
class ChangeEntry(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    session_id: str
    rev: int
    before: Visibility
    after: Visibility
    ops: list[dict[str, Any]]  # JSON Patch relative to the session object
    session: dict[str, Any]  # the session's wire JSON after the change
    # The session's state-digest hash (app.domain.digest) before and after, so each view's
    # digest moves by a sum, never a rehash; None: no such side, or an entry logged before digests.
    hash_before: int | None = None
    hash_after: int | None = None
    # When the webhook or event that made the change arrived (Unix ms), for lag measured at
    # the client's ack; None: an entry logged before this field.
    arrived_ms: int | None = None


class Change(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """A change with its place in the account's log."""

    account_id: str
    epoch: str
    cursor: int
    entry: ChangeEntry


class LogRead(msgspec.Struct, frozen=True):
    """An account's position and its change log after some cursor (None: trimmed past it)."""

    epoch: str
    head: int
    changes: list[Change] | None


_to_builtins = msgspec.to_builtins
entry_encoder = msgspec.json.Encoder()
entry_decoder = msgspec.json.Decoder(ChangeEntry)


def wire(session: SessionInfo | None) -> dict[str, Any]:
    return {} if session is None else _to_builtins(session)


def make_entry(before: SessionInfo | None, after: SessionInfo, rev: int, arrived_ms: int | None = None) -> ChangeEntry:
    old, new = wire(before), wire(after)
    ops: list[Op] = diff(old, new)
    sid = after.id or ""
    return ChangeEntry(
        session_id=sid,
        rev=rev,
        before=Visibility.of(before),
        after=Visibility.of(after),
        ops=ops,
        session=new,
        hash_before=None if before is None else digest.session_hash(sid, before),
        hash_after=digest.session_hash(sid, after),
        arrived_ms=arrived_ms,
    )
