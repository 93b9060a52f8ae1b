"""(a) Inbound call rings an agent's browser client, is answered, then hung up.

The customer's leg P reports only `completed`, to the number's fixed
StatusCallback (no session in its URL): it joins the session through the link
its `<Dial>` child C made. C's URL carries the session and Alice's context.
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

S = "S-a"
P, C = sid("CA", "a", 0), sid("CA", "a", 1)
ctx_c = context(S, **ALICE)
child = {"direction": "outbound-dial", "frm": CUSTOMER, "to": "client:alice", "parent": P}

FLOW = Flow(
    name="a",
    session=S,
    steps=[
        call(C, "initiated", 0, 2, ctx_c, expect("Ringing", "alice"), **child),
        call(C, "ringing", 1, 3, ctx_c, expect("Ringing", "alice"), **child),
        call(C, "in-progress", 2, 10, ctx_c, expect("Connected", "alice"), **child),
        call(C, "completed", 3, 105, ctx_c, expect("Passive", "alice"), **child,
             CallDuration=95, Duration=2, SipResponseCode=200),
        call(P, "completed", 0, 106, number_level(), expect(None), direction="inbound", frm=CUSTOMER,
             to=OUR_NUMBER, CallDuration=104, Duration=2),
    ],
    final={
        "ended": True, "callState": "Disconnected", "direction": "Incoming", "callSid": P,
        "fromAddress": CUSTOMER, "toAddress": OUR_NUMBER, "fromPhoneNumber": CUSTOMER,
        "answeredById": "E-alice", "answeredByName": "Alice", "wasMissed": False, "outcome": "completed",
        "dateCompleted": iso(106), "dateCreated": iso(2), "dateLastModified": iso(106), "members": [],
        "channel": "Voice",
    },
)
