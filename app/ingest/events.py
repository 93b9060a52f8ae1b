"""Applying a parsed, validated events batch (I/O): one atomic commit per event.

The batch is first checked whole against the sessions' owners (one round trip,
a GET per session), so an event naming another account's session rejects the
batch with nothing applied, as docs/events-api.md promises. That read proves
the owner of every session that has one (an owner key is only ever set if
absent, never changed), so those commits skip the claim. A session nobody
owned at the read must still be claimed, and that claim cannot move into the
read without writing for a batch that may yet be rejected: its first commit
claims it in its own read (`SET NX GET`, no extra round trip), which refuses a
writer that bound it to another account since the check: that event is
`rejected`, the others are applied."""

from __future__ import annotations

from typing import Literal

import msgspec

from app.domain.platform_events import BatchInvalid, Event, apply_event
from app.domain.dtos import ResponseError
from app.domain.records import SessionRecord
from app.storage.session_store import OwnershipConflict, SessionStore, Transition

Status = Literal["applied", "unchanged", "duplicate", "rejected"]


class EventResult(msgspec.Struct, rename="camel", omit_defaults=True):
    event_id: str
    status: Status
    cursor: int | None = None  # the account's cursor after an applied event
    message: str | None = None  # why it was rejected


class BatchResult(msgspec.Struct):
    """The reply body of `POST /events`."""

    applied: int
    duplicates: int
    results: list[EventResult]


def event_transition(event: Event) -> Transition:
    def transition(current: SessionRecord | None) -> SessionRecord:
        info = apply_event(current.info if current else None, event)
        return SessionRecord(info=info, meta=current.meta if current else {}, rev=current.rev if current else 0)

    return transition


class EventIngest:
    """The events API's use case, shaped like Twilio's `Ingest`: built from the
    store, `handle` takes what the route parsed and returns what it replies."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    async def handle(self, events: list[Event]) -> BatchResult:
        """Apply `events` in order; BatchInvalid (nothing applied) if one names
        another account's session, StoreUnavailable if Redis is down."""
        unclaimed = await self._check_owners(events)
        result = BatchResult(0, 0, [])
        for event in events:
            outcome = await self._commit(event, claim=event.session_id in unclaimed)
            if outcome.status != "rejected":
                unclaimed.discard(event.session_id)  # claimed by this commit's read
            result.results.append(outcome)
        for r in result.results:
            if r.status == "duplicate":
                result.duplicates += 1
            elif r.status != "rejected":
                result.applied += 1
        return result

    async def _commit(self, event: Event, *, claim: bool) -> EventResult:
        try:
            outcome = await self.store.commit(event.account_id, event.session_id, event_transition(event),
                                              event.event_id, claim=claim)
        except OwnershipConflict as exc:  # lost a race with another writer since the check
            return EventResult(event.event_id, "rejected", message=str(exc))
        cursor = outcome.change.cursor if outcome.change is not None else None
        return EventResult(event.event_id, outcome.status, cursor)

    async def _check_owners(self, events: list[Event]) -> set[str]:
        """Reject the whole batch if any event names the wrong account for a
        session; else the sessions nobody owns yet."""
        owners = await self.store.owners(sorted({e.session_id for e in events}))
        errors = [
            ResponseError(error_code="AccountMismatch", field_name=f"events[{i}].accountId",
                          message=f"Session {e.session_id!r} belongs to another account")
            for i, e in enumerate(events)
            if owners.get(e.session_id) not in (None, e.account_id)
        ]
        if errors:
            raise BatchInvalid(errors)
        return {session for session, owner in owners.items() if owner is None}
