"""Who sees which session (pure). The one rule every read path uses."""

from __future__ import annotations

from typing import Protocol, Sequence

import msgspec

from app.auth import Principal


class _Member(Protocol):
    @property
    def endpoint_id(self) -> str | None: ...


class Scoped(Protocol):
    """What the rule reads of a session: a SessionInfo, or the slim SessionScope."""

    @property
    def account_id(self) -> str | None: ...
    @property
    def ended(self) -> bool | None: ...
    @property
    def endpoint_id(self) -> str | None: ...
    @property
    def answered_by_id(self) -> str | None: ...
    @property
    def members(self) -> Sequence[_Member] | None: ...


class MemberScope(msgspec.Struct, rename="camel"):
    endpoint_id: str | None = None


class SessionScope(msgspec.Struct, rename="camel"):
    """Only the fields visibility and ordering need, decoded from stored session
    JSON without building the whole SessionInfo (the snapshot hot path)."""

    id: str | None = None
    account_id: str | None = None
    ended: bool | None = None
    endpoint_id: str | None = None
    answered_by_id: str | None = None
    members: list[MemberScope] | None = None
    date_created: str | None = None


decode_scope = msgspec.json.Decoder(SessionScope).decode


def session_endpoints(session: Scoped) -> frozenset[str]:
    """Endpoints a session is visible to: its own, who answered, every member's."""
    eps = {session.endpoint_id, session.answered_by_id}
    eps.update(m.endpoint_id for m in session.members or ())
    eps.discard(None)
    eps.discard("")
    return frozenset(eps)  # type: ignore[arg-type]


def is_active(session: Scoped) -> bool:
    return not session.ended


def can_see(principal: Principal, session: Scoped) -> bool:
    """Active, same account, and either a manager/admin or one of its endpoints.

    Reads only `account_id`, `sees_whole_account` and `endpoint_id` of the
    principal: `snapshots.key_for` shares rendered responses between principals
    equal in those, so widen that key if this rule ever reads more."""
    if not is_active(session) or session.account_id != principal.account_id:
        return False
    if principal.sees_whole_account:
        return True
    return principal.endpoint_id is not None and principal.endpoint_id in session_endpoints(session)
