"""What one viewer gets from one change (pure).

A client's state is `{sessionId: SessionInfo wire JSON}` of the sessions it
may see. A change moves a session between "seen before" and "seen after"; the
ops a viewer needs depend on that pair alone, so every viewer with the same
pair gets the same patch (at most three distinct patches per change)."""

from __future__ import annotations

from dataclasses import dataclass

from app.auth import Principal
from app.changes import ChangeEntry, Visibility
from app.patches import Op, pointer_token
from app.visibility import decode_scope

Seen = tuple[bool, bool]
"""(saw the session before the change, sees it after)."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """What decides a user's view: the rules of `GET /sessions/active`."""

    account_id: str
    endpoint_id: str | None
    whole_account: bool

    @classmethod
    def of(cls, principal: Principal) -> Viewer:
        return cls(principal.account_id, principal.endpoint_id, principal.sees_whole_account)

    def sees(self, visibility: Visibility) -> bool:
        return visibility.sees(self.endpoint_id, self.whole_account)


def seen(entry: ChangeEntry, viewer: Viewer) -> Seen:
    return viewer.sees(entry.before), viewer.sees(entry.after)


def ops_for(entry: ChangeEntry, pair: Seen) -> list[Op]:
    """The JSON Patch, against the client's whole state, for one class of viewer.

    Entering view is an `add` of the whole session, leaving a `remove`; a
    session that ended first gets its final fields, then the remove, in the
    same patch, so a client can show how it ended."""
    before, after = pair
    if not before and not after:
        return []
    root = "/" + pointer_token(entry.session_id)
    if not before:
        return [{"op": "add", "path": root, "value": entry.session}]
    if after:
        return _rooted(entry.ops, root)
    final = _rooted(entry.ops, root) if not entry.after.active else []
    return [*final, {"op": "remove", "path": root}]


def _rooted(ops: list[Op], root: str) -> list[Op]:
    return [{**op, "path": root + op["path"]} for op in ops]


def visible_sessions(viewer: Viewer, blobs: list[bytes]) -> dict[str, bytes]:
    """Stored session JSON -> the viewer's state, by the same rule as the change
    classes above (a stale index never leaks a session)."""
    out: dict[str, bytes] = {}
    for blob in blobs:
        scope = decode_scope(blob)  # only the fields the rule reads, as GET /sessions/active does
        if scope.id and scope.account_id == viewer.account_id and viewer.sees(Visibility.of(scope)):
            out[scope.id] = blob
    return out
