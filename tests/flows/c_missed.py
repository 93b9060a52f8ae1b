"""(c) Missed calls: the agent does not answer, or the caller gives up while it rings.

The parent leg ends `completed` either way (Twilio answered it), so only the
child's status tells that the call was missed.
"""

from tests.flows.model import (
    ALICE,
    CUSTOMER,
    OUR_NUMBER,
    Flow,
    call,
    context,
    expect,
    iso,
    number_level,
    sid,
)


def missed(name: str, child_end: str, t_end: int, outcome: str, **end_extra: object) -> Flow:
    session = f"S-{name}"
    p, c = sid("CA", name, 0), sid("CA", name, 1)
    ctx_c = context(session, **ALICE)
    child = {"direction": "outbound-dial", "frm": CUSTOMER, "to": "client:alice", "parent": p}
    # After the agent's leg ends unanswered the caller is still on (voicemail):
    # nobody answered, so the session is still Ringing, and no longer Alice's.
    return Flow(
        name=name,
        session=session,
        steps=[
            call(c, "initiated", 0, 2, ctx_c, expect("Ringing", "alice"), **child),
            call(c, "ringing", 1, 3, ctx_c, expect("Ringing", "alice"), **child),
            call(c, child_end, 2, t_end, ctx_c, expect("Ringing"), **child, **end_extra),
            call(p, "completed", 0, t_end + 1, number_level(), expect(None), direction="inbound", frm=CUSTOMER,
                 to=OUR_NUMBER, CallDuration=t_end),
        ],
        final={
            "ended": True, "callState": "Disconnected", "direction": "Incoming", "wasMissed": True,
            "outcome": outcome, "dateCompleted": iso(t_end + 1), "members": [],
        },
    )


NO_ANSWER = missed("c_no_answer", "no-answer", 33, "no-answer", SipResponseCode=487)
ABANDONED = missed("c_abandoned", "canceled", 15, "caller-abandoned")
