"""Callbacks of one call for the sweep's tests: an inbound customer leg and the agent
leg its `<Dial>` rings, parsed by the webhooks' own parser, at times given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from app.twilio.callbacks import Callback, parse
from tests.support.twilio_api import rfc2822

ACCOUNT_SID = "AC" + "1" * 32
OTHER_ACCOUNT_SID = "AC" + "2" * 32
CUSTOMER = "CA" + "a" * 32
AGENT = "CA" + "b" * 32
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def status(call_sid: str, call_status: str, seq: int, at: datetime, *, account: str = "A1", session: str = "S1",
           account_sid: str = ACCOUNT_SID, agent: bool = False) -> tuple[str, list[tuple[str, str]], Callback]:
    """(query, form, parsed) of one status callback of the customer leg, or of the agent leg."""
    form = [("CallSid", call_sid), ("AccountSid", account_sid), ("CallStatus", call_status),
            ("SequenceNumber", str(seq)), ("Timestamp", rfc2822(at))]
    context = {"accountId": account, "sessionId": session}
    if agent:
        form += [("From", "+15551230000"), ("To", "client:alice"), ("Direction", "outbound-dial"),
                 ("ParentCallSid", CUSTOMER)]
        context.update(endpointId="E1", role="Agent", displayName="Alice")
    else:
        form += [("From", "+15551230000"), ("To", "+15559870000"), ("Direction", "inbound")]
    query = urlencode(context)
    return query, form, parse("status", query, form)


def ringing(**kw: object) -> list[tuple[str, list[tuple[str, str]], Callback]]:
    """The customer's call rings in (at T0) and nothing more is heard."""
    return [status(CUSTOMER, "ringing", 0, T0, **kw)]  # type: ignore[arg-type]


def answered(**kw: object) -> list[tuple[str, list[tuple[str, str]], Callback]]:
    """The customer's call is answered by Alice at T0 + 5 s and nothing more is heard."""
    return [status(CUSTOMER, "ringing", 0, T0, **kw), status(CUSTOMER, "in-progress", 1, T0, **kw),  # type: ignore[arg-type]
            status(AGENT, "initiated", 0, T0, agent=True, **kw), status(AGENT, "ringing", 1, T0, agent=True, **kw),  # type: ignore[arg-type]
            status(AGENT, "in-progress", 2, T0 + timedelta(seconds=5), agent=True, **kw)]  # type: ignore[arg-type]
