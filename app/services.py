"""The objects the app runs on: built once, all together, by `app.composition.build_services`
(when the app is created, not on a request), started and stopped by the lifespan, and
handed to routes through `services(conn)`. Every field is set; nothing is added later."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

from app.auth.tokens import Principal, TokenVerifier
from app.config import Settings
from app.ingest.events import EventIngest
from app.observability.context import note_account
from app.web.snapshot_cache import SnapshotReads
from app.storage.session_store import SessionStore

if TYPE_CHECKING:  # built from these modules, which import this one for `services`
    from app.live.client import LiveLimits
    from app.live.hub import Hub
    from app.live.presence import Presence
    from app.observability.metrics import Metrics
    from app.sweep.sweeper import Sweeper
    from app.web.origins import OriginPolicy
    from app.web.twilio import TwilioWebhooks


@dataclass(slots=True)
class Services:
    settings: Settings
    store: SessionStore
    verifier: TokenVerifier
    live: Hub  # live push; started and stopped by the lifespan
    live_limits: LiveLimits  # queue, timeout and size limits every live connection shares
    reads: SnapshotReads  # cached, position-validated GET /sessions/active
    origins: OriginPolicy  # which pages may use cookie credentials (app.web.origins)
    events: EventIngest  # POST /events's use case
    twilio: TwilioWebhooks  # the Twilio callbacks' tokens, public URL and ingester
    metrics: Metrics  # what GET /metrics reads at scrape time
    sweeper: Sweeper  # finds stuck sessions and asks Twilio about them; started and stopped by the lifespan
    presence: Presence  # this process's leases and presence watchers; started and stopped by the lifespan

    async def authenticate(self, token: str | None) -> Principal:
        principal = await self.verifier.authenticate(token)
        note_account(principal.account_id)  # for this request's log lines
        return principal


def services(conn: HTTPConnection) -> Services:
    return conn.app.state.services  # type: ignore[no-any-return]
