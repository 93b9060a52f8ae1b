"""Recorded Twilio callback sequences: what a flow is, and builders for its steps.

A step is one callback exactly as Twilio would send it (path, the query string
the platform put on the URL, the form parameters) plus what `GET
/sessions/active` shows each user after it. Signatures are made at send time
with the real `twilio` package, for whatever URL the service is reached at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

TWILIO_TOKEN = "test-twilio-auth-token-0123456789"  # config/test.toml
ACCOUNT = "A1"
TWILIO_ACCOUNT = "AC" + "0" * 31 + "1"
CUSTOMER = "+15551230000"
OUR_NUMBER = "+15559870000"
CALLEE = "+15557654321"
START = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
# Who looks at GET /sessions/active: endpoint users, a manager of the account,
# a user of the account who is in no call, and a manager of another account.
USERS: dict[str, dict[str, Any]] = {
    "alice": {"account": ACCOUNT, "endpoint": "E-alice", "roles": ("User",)},
    "bob": {"account": ACCOUNT, "endpoint": "E-bob", "roles": ("User",)},
    "mgr": {"account": ACCOUNT, "endpoint": "E-mgr", "roles": ("User", "Manager")},
    "eve": {"account": ACCOUNT, "endpoint": "E-eve", "roles": ("User",)},
    "other": {"account": "A2", "endpoint": "E-alice", "roles": ("User", "Manager")},
}
ALICE = {"endpointId": "E-alice", "role": "Agent", "displayName": "Alice"}
BOB = {"endpointId": "E-bob", "role": "Transfer", "displayName": "Bob"}


def sid(prefix: str, flow: str, n: int) -> str:
    """A well-formed SID, distinct per flow and leg: `CA` + 32 hex digits."""
    return f"{prefix}{flow.encode().hex()[:16]:0>16}{n:016x}"


def at(seconds: int) -> str:
    """Twilio's `Timestamp`: RFC 2822, one-second resolution."""
    return format_datetime(START + timedelta(seconds=seconds))


def iso(seconds: int) -> str:
    return (START + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Expect:
    """After a step: the session's call state (None once it has ended and is
    shown to nobody), and which endpoint users see it (managers always do
    while it is active)."""

    state: str | None
    visible_to: frozenset[str] = frozenset()

    def sees(self, user: str) -> str | None:
        """The call state `user` sees for the flow's session, None if not shown."""
        if self.state is None or user in ("eve", "other"):
            return None
        if user == "mgr" or user in self.visible_to:
            return self.state or ""
        return None


def expect(state: str | None, *users: str) -> Expect:
    return Expect(state, frozenset(users))


@dataclass(frozen=True)
class Step:
    path: str
    query: dict[str, str]
    params: dict[str, str]
    then: Expect

    @property
    def url_tail(self) -> str:
        return self.path + (f"?{urlencode(self.query)}" if self.query else "")

    def signature(self, base_url: str, token: str = TWILIO_TOKEN) -> str:
        return RequestValidator(token).compute_signature(base_url + self.url_tail, self.params)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Flow:
    name: str
    session: str
    steps: list[Step]
    final: dict[str, Any]  # wire fields the ended session must have
    opening: list[dict[str, Any]] = field(default_factory=list)  # the platform's own events first
    opening_sees: Expect | None = None


def context(session: str, **leg: str) -> dict[str, str]:
    return {"accountId": ACCOUNT, "sessionId": session, **leg}


def number_level() -> dict[str, str]:
    """A StatusCallback fixed on the phone number or TwiML App: no session."""
    return {"accountId": ACCOUNT}


def call(call_sid: str, status: str, seq: int, t: int, query: dict[str, str], then: Expect, *,
         direction: str, frm: str, to: str, parent: str | None = None, **extra: Any) -> Step:
    params = {
        "AccountSid": TWILIO_ACCOUNT, "ApiVersion": "2010-04-01", "CallSid": call_sid, "CallStatus": status,
        "Direction": direction, "From": frm, "To": to, "Caller": frm, "Called": to,
        "CallbackSource": "call-progress-events", "SequenceNumber": str(seq), "Timestamp": at(t),
        **{k: str(v) for k, v in extra.items()},
    }
    if parent:
        params["ParentCallSid"] = parent
    return Step("/twilio/status", query, params, then)


def conference(conference_sid: str, event: str, seq: int, t: int, query: dict[str, str], then: Expect,
               *, call_sid: str | None = None, **extra: Any) -> Step:
    params = {
        "AccountSid": TWILIO_ACCOUNT, "ConferenceSid": conference_sid, "FriendlyName": f"room-{query['sessionId']}",
        "StatusCallbackEvent": event, "SequenceNumber": str(seq), "Timestamp": at(t),
        **{k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in extra.items()},
    }
    if call_sid:
        params["CallSid"] = call_sid
    return Step("/twilio/conference", query, params, then)


def participant(conference_sid: str, event: str, seq: int, t: int, query: dict[str, str], then: Expect,
                call_sid: str, label: str, *, hold: bool = False, muted: bool = False, **extra: Any) -> Step:
    return conference(conference_sid, event, seq, t, query, then, call_sid=call_sid, ParticipantLabel=label,
                      Hold=hold, Muted=muted, Coaching=False, **extra)
