"""(f) An agent's softphone calls out; the number is busy, or the call fails.

The platform opens the session when Alice's TwiML App request arrives (it
knows who is calling), and gives the `<Number>`'s statusCallback the session.
Alice's own leg reports only `completed`, to the TwiML App's fixed URL, and is
found through the link its child made.
"""

from typing import Any

from tests.flows.model import (
    ACCOUNT,
    CALLEE,
    OUR_NUMBER,
    Flow,
    Step,
    call,
    context,
    expect,
    iso,
    number_level,
    sid,
)


def outbound(name: str, ending: list[tuple[str, int, dict[str, Any]]], outcome: str) -> Flow:
    session = f"S-{name}"
    a, c = sid("CA", name, 0), sid("CA", name, 1)
    ctx_c = context(session, displayName="Customer")
    callee = {"direction": "outbound-dial", "frm": OUR_NUMBER, "to": CALLEE, "parent": a}
    steps: list[Step] = [call(c, "initiated", 0, 2, ctx_c, expect("Ringing", "alice"), **callee)]
    for seq, (status, t, extra) in enumerate(ending, start=1):
        then = expect(None) if seq == len(ending) else expect("Ringing", "alice")
        steps.append(call(c, status, seq, t, ctx_c, then, **callee, **extra))
    steps.append(call(a, "completed", 0, 9, number_level(), expect(None), direction="inbound",
                      frm="client:alice", to=CALLEE, CallDuration=9))
    return Flow(
        name=name,
        session=session,
        opening=[{
            "type": "session.upsert", "eventId": f"open-{session}", "accountId": ACCOUNT, "sessionId": session,
            "occurredAt": iso(1), "session": {"endpointId": "E-alice", "direction": "Outgoing"},
        }],
        opening_sees=expect("", "alice"),
        steps=steps,
        final={
            "ended": True, "callState": "Disconnected", "direction": "Outgoing", "endpointId": "E-alice",
            "callSid": a, "fromAddress": "client:alice", "toAddress": CALLEE, "fromPhoneNumber": OUR_NUMBER,
            "wasMissed": False, "outcome": outcome, "members": [],
        },
    )


BUSY = outbound("f_busy", [("ringing", 3, {}), ("busy", 8, {"SipResponseCode": 486, "CallDuration": 0})], "busy")
FAILED = outbound("f_failed", [("failed", 4, {"SipResponseCode": 404, "CallDuration": 0})], "failed")
