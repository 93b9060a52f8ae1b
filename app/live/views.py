"""What one viewer gets from one change (pure).

A client's state is `{sessionId: SessionInfo wire JSON}` of the sessions it
may see. A change moves a session between "seen before" and "seen after"; the
ops a viewer needs depend on that pair alone, so every viewer with the same
pair gets the same patch (at most three distinct patches per change)."""

from __future__ import annotations

from app.domain.changes import ChangeEntry
from app.domain.json_patch import Op, pointer_token
from app.domain.visibility import Viewer, visible_sessions

__all__ = ["Seen", "Viewer", "ops_for", "seen", "visible_sessions"]  # the viewer and its rule: app.domain.visibility

Seen = tuple[bool, bool]
"""(saw the session before the change, sees it after)."""


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
