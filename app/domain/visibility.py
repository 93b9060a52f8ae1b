"""Who sees which session (pure): the one rule, for REST reads and the live relay.

A `Viewer` is everything of a principal that decides what it sees: its
account, whether it sees the whole account (Manager/Admin) and, if not, its
endpoint. A session's `Visibility` is who it reaches: whether it is active and
the endpoints on it. `Viewer.sees(visibility)` is the rule; every path goes
through it: `GET /sessions/active` and the live snapshot via
`visible_sessions`, each change's before/after classes via `live.views.seen`."""

from __future__ import annotations

from collections.abc import Container, Iterable
from typing import Protocol, Sequence

import msgspec

from app.auth.tokens import Principal


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


class Audience(Protocol):
    """Who a session reaches, as the rule reads it."""

    @property
    def active(self) -> bool: ...
    @property
    def endpoints(self) -> Container[str]: ...


class Visibility(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """Who a session reaches (within its account); carried by each change entry, before and after
    (untracked by the cyclic collector, like the entry: app.domain.changes)."""

    active: bool
    endpoints: list[str]

    @classmethod
    def of(cls, session: Scoped | None) -> Visibility:
        if session is None:
            return cls(False, [])
        return cls(is_active(session), sorted(session_endpoints(session)))


class _SessionAudience:
    """A stored session's audience, its endpoints collected only if the rule asks
    (a manager's read never does)."""

    __slots__ = ("_session",)

    def __init__(self, session: Scoped) -> None:
        self._session = session

    @property
    def active(self) -> bool:
        return is_active(self._session)

    @property
    def endpoints(self) -> frozenset[str]:
        return session_endpoints(self._session)


class Viewer(msgspec.Struct, frozen=True, gc=False):
    """What decides a user's view. Principals equal here see exactly the same
    sessions, so the snapshot cache and the live relay share work between them:
    widen this if the rule ever reads more of a principal."""

    account_id: str
    endpoint_id: str | None  # None when whole_account, or when the principal has none (sees nothing)
    whole_account: bool

    @classmethod
    def of(cls, principal: Principal) -> Viewer:
        whole = principal.sees_whole_account
        return cls(principal.account_id, None if whole else principal.endpoint_id, whole)

    def sees(self, audience: Audience) -> bool:
        """The rule: active, and either a manager/admin or one of its endpoints
        is on the session (the account is matched by the caller: a change's is
        its log's, a stored session's in `sees_session`)."""
        if not audience.active:
            return False
        return self.whole_account or (self.endpoint_id is not None and self.endpoint_id in audience.endpoints)

    def sees_session(self, session: Scoped) -> bool:
        return session.account_id == self.account_id and self.sees(_SessionAudience(session))


def can_see(principal: Principal, session: Scoped) -> bool:
    return Viewer.of(principal).sees_session(session)


def visible_sessions(viewer: Viewer, blobs: Iterable[bytes]) -> dict[str, bytes]:
    """Stored session JSON -> the sessions the viewer sees, by id, oldest first.
    An index already scopes them; re-checking the rule here keeps a stale index
    from ever leaking a session."""
    pairs = [(scope, blob) for blob in blobs if (scope := decode_scope(blob)).id and viewer.sees_session(scope)]
    pairs.sort(key=lambda p: (p[0].date_created or "", p[0].id or ""))
    return {scope.id or "": blob for scope, blob in pairs}
