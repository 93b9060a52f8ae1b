"""Test data builders: tokens, events, fully populated sessions."""

from __future__ import annotations

import itertools
from typing import Any

from app.auth.tokens import mint_token
from app.config import Settings

_ids = itertools.count(1)


def token(settings: Settings, *, sub: str = "u1", account: str = "A1", endpoint: str | None = "E1",
          roles: tuple[str, ...] = ("User",), ttl: int = 3600, **kw: Any) -> str:
    return mint_token(settings.jwt_verify_key(), sub=sub, account_id=account, endpoint_id=endpoint,
                      roles=list(roles), ttl_seconds=ttl, **kw)


def event(type_: str, account: str, session: str, /, *, at: str = "2024-05-01T10:00:00Z",
          event_id: str | None = None, **body: Any) -> dict[str, Any]:
    return {"type": type_, "eventId": event_id or f"ev-{next(_ids)}", "accountId": account,
            "sessionId": session, "occurredAt": at, **body}
