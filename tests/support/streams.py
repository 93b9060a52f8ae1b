"""One randomised stream of session changes, for every test of live state.

A history is a list of (session id, next version of that session). From it:
- `view_patches`: what each kind of viewer is sent (the server's own
  `make_entry` + `ops_for`), with the state it must have after each patch;
- `events`: the events-API batches that make a real server go through the
  same history (an ended session stays ended: the server decides, tests
  compare with what `GET /sessions/active` says).

Seeded `random.Random`, so a failing case is repeated by its seed, and
`histories()` wraps it for hypothesis. Session ids include JSON Pointer
escapes (`/`, `~`) where only patches see them, and `__proto__` everywhere.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Final

import jsonpatch
import msgspec
from hypothesis import strategies as st

from app.domain.changes import make_entry
from app.live.views import Viewer, ops_for, seen, visible_sessions
from app.domain.dtos import SessionInfo, SessionLogInfo, SessionMemberInfo

ACCOUNT: Final = "A1"
POINTER_IDS: Final = ("S1", "S2", "x/y", "a~b", "__proto__")  # only for patches
SERVER_IDS: Final = ("S1", "S2", "S.3", "a:b", "__proto__")  # the events API's alphabet
ENDPOINTS: Final = (None, "E1", "E2")
VIEWERS: Final = {
    "manager": Viewer(ACCOUNT, None, True),
    "e1": Viewer(ACCOUNT, "E1", False),
    "e2": Viewer(ACCOUNT, "E2", False),
    "nobody": Viewer(ACCOUNT, None, False),
}
_TEXT = ("", "a", "Ünïcødé ☎", "x/y~z", "line\nbreak", '"quoted"')
History = list[tuple[str, SessionInfo]]


def version(rng: random.Random, sid: str, previous: SessionInfo | None) -> SessionInfo:
    """The next state of a session: some fields change, the log may grow, it may end."""
    log = list(previous.log or ()) if previous else []
    if rng.random() < 0.4:
        log.append(SessionLogInfo(date=f"2024-05-01T10:00:{len(log) % 60:02d}.000Z", message=rng.choice(_TEXT) or "-"))
    members = [
        SessionMemberInfo(identity=f"client:m{i}", endpoint_id=rng.choice(ENDPOINTS), display_name=rng.choice(_TEXT),
                          role=rng.choice(["Caller", "Agent", "Transfer"]), call_state=rng.choice(["Ringing", "Connected", "Hold"]),
                          muted=rng.choice([None, True, False]), call_sid=f"CA{i}")
        for i in range(rng.choice([0, 0, 1, 2, 3]))
    ]
    return SessionInfo(
        id=sid, account_id=ACCOUNT, endpoint_id=rng.choice(ENDPOINTS), ended=rng.random() < 0.12 or None,
        call_state=rng.choice(["Ringing", "Connected", "Hold", "Passive"]),
        queue_state=rng.choice([None, "Queued", "Connected"]), display_name=rng.choice(_TEXT),
        held_by_user_id=rng.choice([None, None, "u1"]), members=members or None, log=log or None,
        date_created="2024-05-01T10:00:00.000Z",
    )


def history(rng: random.Random, length: int, ids: tuple[str, ...] = POINTER_IDS) -> History:
    current: dict[str, SessionInfo] = {}
    out: History = []
    for _ in range(length):
        sid = rng.choice(ids)
        current[sid] = version(rng, sid, current.get(sid))
        out.append((sid, current[sid]))
    return out


def histories(max_length: int = 25) -> st.SearchStrategy[History]:
    return st.builds(lambda seed, n: history(random.Random(seed), n), st.integers(0, 2**32), st.integers(0, max_length))


# -- what viewers are sent ---------------------------------------------------------------------

@dataclass
class ViewerStream:
    """Patches for one viewer (cursor, ops) and the state after each (jsonpatch)."""

    patches: list[tuple[int, list[dict[str, Any]]]]
    states: list[dict[str, Any]]
    final: dict[str, Any]  # by the other road: visible_sessions of the last versions


def view_patches(hist: History) -> dict[str, ViewerStream]:
    current: dict[str, SessionInfo] = {}
    streams = {name: ViewerStream([], [], {}) for name in VIEWERS}
    state: dict[str, dict[str, Any]] = {name: {} for name in VIEWERS}
    for cursor, (sid, after) in enumerate(hist, 1):
        entry = make_entry(current.get(sid), after, cursor)
        current[sid] = after
        for name, viewer in VIEWERS.items():
            ops = ops_for(entry, seen(entry, viewer))
            if ops:
                state[name] = jsonpatch.apply_patch(state[name], ops)
                streams[name].patches.append((cursor, ops))
                streams[name].states.append(state[name])
    blobs = [msgspec.json.encode(s) for s in current.values()]
    for name, viewer in VIEWERS.items():
        streams[name].final = {k: msgspec.json.decode(v) for k, v in visible_sessions(viewer, blobs).items()}
    return streams


# -- the same history through the events API --------------------------------------------------

_CLEARABLE: Final = ("endpointId", "callState", "queueState", "displayName", "heldByUserId", "members")


def events(hist: History, prefix: str = "ev") -> list[dict[str, Any]]:
    """One event per step: an upsert of the fields that vary (absent ones
    cleared with null), a log line when the log grew, an end when it ended."""
    out: list[dict[str, Any]] = []
    logged: dict[str, int] = {}
    for n, (sid, v) in enumerate(hist):
        wire = msgspec.to_builtins(v)
        base = {"eventId": f"{prefix}-{n}", "accountId": ACCOUNT, "sessionId": sid,
                "occurredAt": f"2024-05-01T10:{n // 60 % 60:02d}:{n % 60:02d}Z"}
        if v.ended:
            out.append({**base, "type": "session.end", "outcome": "completed"})
            continue
        log = v.log or []
        if len(log) > logged.get(sid, 0):
            logged[sid] = len(log)
            out.append({**base, "eventId": f"{prefix}-{n}-log", "type": "session.log", "message": log[-1].message})
        out.append({**base, "type": "session.upsert", "session": {k: wire.get(k) for k in _CLEARABLE}})
    return out
