"""(b) Inbound call waits in a queue, then is bridged to an agent.

The platform opens the session (queued) through the events API when the call
arrives, and re-points the caller's StatusCallback at a URL with its context
(`calls(P).update(statusCallback=…)`). The agent offer is a REST-created call
to Alice's client with all four status events; her TwiML dequeues the caller.
"""

from typing import Any

from tests.flows.model import (
    ACCOUNT,
    ALICE,
    CUSTOMER,
    OUR_NUMBER,
    Flow,
    call,
    context,
    expect,
    iso,
    sid,
)

S = "S-b"
P, A = sid("CA", "b", 0), sid("CA", "b", 1)
ctx_a = context(S, **ALICE)
ctx_p = context(S, role="Caller")
agent = {"direction": "outbound-api", "frm": OUR_NUMBER, "to": "client:alice"}
customer = {"direction": "inbound", "frm": CUSTOMER, "to": OUR_NUMBER}
OPENING: list[dict[str, Any]] = [{
    "type": "session.upsert", "eventId": "open-S-b", "accountId": ACCOUNT, "sessionId": S,
    "occurredAt": iso(0), "session": {"queueState": "Queued", "direction": "Incoming", "fromAddress": CUSTOMER},
}]

FLOW = Flow(
    name="b",
    session=S,
    opening=OPENING,
    opening_sees=expect(""),
    steps=[
        call(A, "initiated", 0, 20, ctx_a, expect("Ringing", "alice"), **agent),
        call(A, "ringing", 1, 21, ctx_a, expect("Ringing", "alice"), **agent),
        call(A, "in-progress", 2, 30, ctx_a, expect("Connected", "alice"), **agent),
        call(P, "completed", 0, 90, ctx_p, expect(None), **customer, CallDuration=90),
        call(A, "completed", 3, 90, ctx_a, expect(None), **agent, CallDuration=60),
    ],
    final={
        "ended": True, "callState": "Disconnected", "queueState": "Queued", "direction": "Incoming",
        "callSid": P, "answeredById": "E-alice", "answeredByName": "Alice", "wasMissed": False,
        "outcome": "completed", "dateCompleted": iso(90), "dateCreated": iso(0), "members": [],
    },
)

ABANDONED = Flow(
    name="b_abandoned",
    session="S-b2",
    opening=[{**OPENING[0], "eventId": "open-S-b2", "sessionId": "S-b2"}],
    opening_sees=expect(""),
    steps=[
        call(sid("CA", "b2", 0), "completed", 0, 40, context("S-b2", role="Caller"), expect(None), **customer,
             CallDuration=40),
    ],
    final={"ended": True, "wasMissed": True, "outcome": "caller-abandoned", "dateCompleted": iso(40)},
)
