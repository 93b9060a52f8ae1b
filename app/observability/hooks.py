"""The one-line hooks other modules call, and the store wrapper that times commits.

`relayed` runs once per change per process (not per socket): it looks up when
this process received the webhook that made the change, and the change's own
event time (`dateLastModified`: a Twilio callback's `Timestamp`, an event's
`occurredAt`), and observes both right after the pump's write for that turn."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from datetime import datetime
from typing import Any

from app.domain.changes import Change
from app.observability.context import current
from app.observability.tally import TALLY
from app.storage.session_store import CommitResult, SessionStore

_ARRIVALS_MAX = 10_000


def source_of(route: str) -> str:
    return "twilio" if route.startswith("/twilio") else "events" if route.startswith("/events") else "other"


class Deliveries:
    """When this process received the request committing to a session, until that
    commit's change is relayed here. Keyed by session, and noted before the commit:
    the change can come back on pub/sub before the commit's own reply is read."""

    def __init__(self) -> None:
        self._arrivals: OrderedDict[tuple[str, str], tuple[float, str]] = OrderedDict()

    def committing(self, account_id: str, session_id: str, arrived: float, route: str) -> None:
        if len(self._arrivals) >= _ARRIVALS_MAX:
            self._arrivals.popitem(last=False)  # relayed elsewhere or never: forget the oldest
        self._arrivals[(account_id, session_id)] = (arrived, source_of(route))

    def settled(self, account_id: str, session_id: str, changed: bool) -> None:
        if not changed:
            self._arrivals.pop((account_id, session_id), None)

    def relayed(self, change: Change) -> None:
        arrival = self._arrivals.pop((change.account_id, change.entry.session_id), None)
        # Scheduled after the pump's flush, which the relay asked for first.
        asyncio.get_running_loop().call_soon(self._written, change, arrival)

    def _written(self, change: Change, arrival: tuple[float, str] | None) -> None:
        source = "other-process"
        if arrival is not None:
            TALLY.arrival_to_write_seconds.observe(time.monotonic() - arrival[0])
            source = arrival[1]
        stamp = change.entry.session.get("dateLastModified")
        if isinstance(stamp, str):
            try:
                at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
            except ValueError:
                return
            TALLY.event_age(source).observe(max(0.0, time.time() - at))


DELIVERIES = Deliveries()


def outcome(name: str) -> None:
    """Count one ingest outcome for the current request's route."""
    ctx = current()
    TALLY.outcomes[(ctx.route if ctx else "", name)] += 1


def relayed(change: Change) -> None:
    DELIVERIES.relayed(change)


class MeasuredStore(SessionStore):
    """The store, with each commit timed and its outcome counted by route."""

    async def commit(self, account_id: str, session_id: str, *args: Any, **kwargs: Any) -> CommitResult:
        ctx = current()
        if ctx is not None:
            DELIVERIES.committing(account_id, session_id, ctx.arrived, ctx.route)
            # The request's arrival, on the wall clock, travels in the change entry (lag at the ack).
            kwargs.setdefault("arrived_ms", int((time.time() - (time.monotonic() - ctx.arrived)) * 1000))
        started = time.perf_counter()
        try:
            result = await super().commit(account_id, session_id, *args, **kwargs)
        except BaseException:
            DELIVERIES.settled(account_id, session_id, changed=False)
            raise
        TALLY.commit_seconds.observe(time.perf_counter() - started)
        DELIVERIES.settled(account_id, session_id, changed=result.change is not None)
        if ctx is not None:
            TALLY.outcomes[(ctx.route, result.status)] += 1
        return result
