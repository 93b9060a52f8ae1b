"""(d) A call in a conference: the agent holds and resumes the customer,
mutes and unmutes, then hangs up (`endConferenceOnExit`), ending the conference.

The conference's statusCallback carries the session; the customer's own leg
reports only `completed` to the number's URL and is found through the link
its `participant-join` made.
"""

from tests.flows.model import (
                               ALICE,
                               CUSTOMER,
                               OUR_NUMBER,
                               Flow,
                               call,
                               conference,
                               context,
                               expect,
                               iso,
                               number_level,
                               participant,
                               sid,
)

S = "S-d"
P, A, CF = sid("CA", "d", 0), sid("CA", "d", 1), sid("CF", "d", 0)
conf = context(S)
ctx_a = context(S, **ALICE)
agent = {"direction": "outbound-api", "frm": OUR_NUMBER, "to": "client:alice"}

FLOW = Flow(
    name="d",
    session=S,
    steps=[
        participant(CF, "participant-join", 1, 1, conf, expect("Ringing"), P, "customer",
                    EndConferenceOnExit=False, StartConferenceOnEnter=True),
        call(A, "initiated", 0, 2, ctx_a, expect("Ringing", "alice"), **agent),
        call(A, "ringing", 1, 3, ctx_a, expect("Ringing", "alice"), **agent),
        call(A, "in-progress", 2, 8, ctx_a, expect("Connected", "alice"), **agent),
        participant(CF, "participant-join", 2, 8, conf, expect("Connected", "alice"), A, "agent",
                    EndConferenceOnExit=True, StartConferenceOnEnter=True),
        conference(CF, "conference-start", 3, 8, conf, expect("Connected", "alice")),
        participant(CF, "participant-hold", 4, 20, conf, expect("Hold", "alice"), P, "customer", hold=True),
        participant(CF, "participant-unhold", 5, 30, conf, expect("Connected", "alice"), P, "customer"),
        participant(CF, "participant-mute", 6, 35, conf, expect("Connected", "alice"), A, "agent", muted=True),
        participant(CF, "participant-unmute", 7, 40, conf, expect("Connected", "alice"), A, "agent"),
        participant(CF, "participant-leave", 8, 60, conf, expect("Passive", "alice"), A, "agent",
                    ParticipantCallStatus="completed", ReasonParticipantLeft="participant_hung_up"),
        participant(CF, "participant-leave", 9, 60, conf, expect("Passive", "alice"), P, "customer",
                    ParticipantCallStatus="in-progress", ReasonParticipantLeft="moderator_ended_conference"),
        conference(CF, "conference-end", 10, 60, conf, expect("Passive", "alice"),
                   ReasonConferenceEnded="participant-with-end-conference-on-exit-left",
                   CallSidEndingConference=A),
        call(A, "completed", 3, 60, ctx_a, expect("Passive", "alice"), **agent, CallDuration=52),
        call(P, "completed", 0, 61, number_level(), expect(None), direction="inbound", frm=CUSTOMER,
             to=OUR_NUMBER, CallDuration=61),
    ],
    final={
        "ended": True, "callState": "Disconnected", "direction": "Incoming", "callSid": P,
        "conferenceSid": CF, "mostRecentParticipantCallSid": A, "answeredById": "E-alice",
        "answeredByName": "Alice", "wasMissed": False, "outcome": "completed", "dateCompleted": iso(61),
        "fromAddress": CUSTOMER, "toAddress": OUR_NUMBER, "members": [], "holdReason": "None",
    },
)
