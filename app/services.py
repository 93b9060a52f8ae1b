"""The objects the app runs on, built once in the lifespan and handed to routes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import HTTPConnection

from app.auth import Principal, TokenVerifier
from app.config import Settings
from app.observability.context import note_account
from app.snapshots import SnapshotReads
from app.store import SessionStore

if TYPE_CHECKING:
    from app.live.hub import Hub
    from app.web.origins import OriginPolicy


@dataclass
class Services:
    settings: Settings
    store: SessionStore
    verifier: TokenVerifier
    extras: dict[str, Any] = field(default_factory=dict)
    live: Hub | None = None  # live push; started and stopped by the lifespan
    reads: SnapshotReads | None = None  # cached, position-validated GET /sessions/active
    origins: OriginPolicy | None = None  # which pages may use cookie credentials (app.web.origins)

    async def authenticate(self, token: str | None) -> Principal:
        principal = await self.verifier.authenticate(token)
        note_account(principal.account_id)  # for this request's log lines
        return principal


def services(conn: HTTPConnection) -> Services:
    return conn.app.state.services  # type: ignore[no-any-return]
