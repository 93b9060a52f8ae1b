"""`POST /events`: the platform's own events, validated whole, applied once each."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.auth import api_key_matches
from app.events import BatchInvalid, Event, apply_event, parse_batch
from app.models import ResponseError
from app.records import SessionRecord
from app.services import services
from app.store import OwnershipConflict, Transition
from app.web.errors import ApiError
from app.web.requests import bearer_from_header, read_body, require_json

_json = msgspec.json.Encoder()


def event_transition(event: Event) -> Transition:
    def transition(current: SessionRecord | None) -> SessionRecord:
        info = apply_event(current.info if current else None, event)
        return SessionRecord(info=info, meta=current.meta if current else {}, rev=current.rev if current else 0)

    return transition


async def post_events(request: Request) -> Response:
    svc = services(request)
    # The key is a server's credential: from the Authorization header only, never a cookie.
    if not api_key_matches(bearer_from_header(request.headers.get("authorization")), svc.settings.events_api_key):
        raise ApiError(401, "Unauthorized", "A valid events API key is required",
                       headers={"WWW-Authenticate": 'Bearer realm="/events"'})
    require_json(request)
    body = await read_body(request, svc.settings.max_body_bytes)
    try:
        events = parse_batch(body, svc.settings.max_events_per_batch)
    except BatchInvalid as exc:
        raise ApiError(400, "ValidationError", "The batch is invalid; nothing was applied", exc.errors) from None
    await _check_owners(request, events)

    counts = {"applied": 0, "duplicates": 0}
    results: list[dict[str, Any]] = []
    for event in events:
        try:
            outcome = await svc.store.commit(event.account_id, event.session_id, event_transition(event),
                                             event.event_id, claim=True)
        except OwnershipConflict as exc:  # lost a race with another writer since the check
            results.append({"eventId": event.event_id, "status": "rejected", "message": str(exc)})
            continue
        counts["duplicates" if outcome.status == "duplicate" else "applied"] += 1
        result: dict[str, Any] = {"eventId": event.event_id, "status": outcome.status}
        if outcome.change is not None:
            result["cursor"] = outcome.change.cursor
        results.append(result)
    return Response(_json.encode({**counts, "results": results}), media_type="application/json; charset=utf-8")


async def _check_owners(request: Request, events: list[Event]) -> None:
    """Reject the whole batch if any event names the wrong account for a session."""
    owners = await services(request).store.owners(sorted({e.session_id for e in events}))
    errors = [
        ResponseError(error_code="AccountMismatch", field_name=f"events[{i}].accountId",
                      message=f"Session {e.session_id!r} belongs to another account")
        for i, e in enumerate(events)
        if owners.get(e.session_id) not in (None, e.account_id)
    ]
    if errors:
        raise ApiError(400, "ValidationError", "The batch is invalid; nothing was applied", errors)


def routes() -> list[Route]:
    return [Route("/events", post_events, methods=["POST"])]
