"""What one viewer gets from one change (pure).

A client's state is `{sessionId: SessionInfo wire JSON}` of the sessions it
may see. A change moves a session between "seen before" and "seen after"; the
ops a viewer needs depend on that pair alone, so every viewer with the same
pair gets the same patch (at most three distinct patches per change)."""

from __future__ import annotations

import msgspec

from app.domain.changes import ChangeEntry
from app.domain.json_patch import Op, pointer_token
from app.domain.visibility import Viewer, visible_sessions

__all__ = ["Seen", "Viewer", "ops_for", "ops_for_range", "seen", "visible_sessions"]  # the viewer and its rule: app.domain.visibility

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


def ops_for_range(entries: list[ChangeEntry], viewer: Viewer) -> list[Op]:
    """One JSON Patch equivalent to the patches of `entries` (consecutive changes, in cursor
    order) for `viewer`: conflation (docs/protocol.md "Conflation").

    Per session, in order of first change, the smaller of its own patches' ops in order
    (only the last of repeated `replace`s of one field) and a compact form: one `add` of its last form if it entered the view, one `remove`
    if it left it (after its final form as one `replace` if it ended while seen), one
    `replace` of the whole session if it stayed. Nothing for a session the viewer never
    saw. So the merged patch is never larger than the patches it replaces, and it shows
    the viewer nothing its own patches would not have."""
    by_session: dict[str, list[ChangeEntry]] = {}
    for entry in entries:
        by_session.setdefault(entry.session_id, []).append(entry)
    merged: list[Op] = []
    for sid, steps in by_session.items():
        first, last = steps[0], steps[-1]
        before, after = viewer.sees(first.before), viewer.sees(last.after)
        if not before and not after:
            continue
        root = "/" + pointer_token(sid)
        compact: list[Op]
        if not before:
            compact = [{"op": "add", "path": root, "value": last.session}]
        elif not after:
            final = not last.after.active and viewer.sees(last.before)
            compact = [{"op": "replace", "path": root, "value": last.session}] if final else []
            compact.append({"op": "remove", "path": root})
        else:
            compact = [{"op": "replace", "path": root, "value": last.session}]
        stepwise = _last_replace_wins([op for step in steps for op in ops_for(step, seen(step, viewer))])
        merged.extend(compact if len(_encode(compact)) <= len(_encode(stepwise)) else stepwise)
    return merged


def _last_replace_wins(ops: list[Op]) -> list[Op]:
    """Ops that are all `replace`s of paths none of which contains another: the last per path
    (they commute, and a later one overrides)."""
    if len(ops) < 2 or any(op["op"] != "replace" for op in ops):
        return ops
    last: dict[str, Op] = {}
    for op in ops:
        last.pop(op["path"], None)
        last[op["path"]] = op
    for path in last:
        parts = path.split("/")
        if any("/".join(parts[:n]) in last for n in range(2, len(parts))):
            return ops
    return list(last.values())


_encode = msgspec.json.Encoder().encode
