"""Running a flow through the pure transition, without HTTP or Redis."""

from __future__ import annotations

import json
from collections.abc import Iterable

import msgspec

from app.auth.tokens import Principal
from app.domain.platform_events import apply_event, parse_batch
from app.domain.dtos import SessionInfo
from app.domain.records import SessionRecord
from app.twilio.callbacks import Callback, parse_conference, parse_status
from app.twilio.transitions import apply
from app.domain.visibility import can_see
from tests.flows.model import USERS, Flow, Step


def callback(step: Step) -> Callback:
    query, form = list(step.query.items()), list(step.params.items())
    return parse_status(query, form) if step.path == "/twilio/status" else parse_conference(query, form)


def opened(flow: Flow) -> SessionRecord | None:
    """The record after the platform's opening events, if the flow has any."""
    info: SessionInfo | None = None
    for raw in flow.opening:
        info = apply_event(info, parse_batch(json.dumps({"events": [raw]}).encode(), 10)[0])
    if info is None:
        return None
    return SessionRecord(info=msgspec.structs.replace(info, id=flow.session, account_id=raw["accountId"]))


def run(flow: Flow, steps: Iterable[Step]) -> Iterable[SessionRecord | None]:
    """The record after each step, as `SessionStore.commit` would keep it (a
    step that changes nothing leaves the record as it was)."""
    record = opened(flow)
    for step in steps:
        proposed = apply(record, callback(step))
        if proposed is not None:
            info = msgspec.structs.replace(proposed.info, id=flow.session, account_id="A1")
            record = SessionRecord(info=info, meta=proposed.meta, rev=proposed.rev + 1)
        yield record


def principal(user: str) -> Principal:
    u = USERS[user]
    return Principal(user_id=user, account_id=u["account"], endpoint_id=u["endpoint"], roles=frozenset(u["roles"]),
                     name=None, expires_at=0)


def sees(info: SessionInfo | None, user: str) -> str | None:
    """The call state `user` is shown for this session, or None if it is hidden."""
    if info is None or not can_see(principal(user), info):
        return None
    return info.call_state.value if info.call_state else ""


def wire(record: SessionRecord | None) -> dict[str, object]:
    return msgspec.to_builtins(record.info) if record else {}  # type: ignore[no-any-return]
