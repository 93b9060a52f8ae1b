"""(e) Warm transfer through the conference: Alice holds the customer, adds Bob
(a Transfer leg), unholds, and drops out; Bob becomes the answering agent and
the call ends when Bob and the customer hang up."""

from tests.flows.model import (
                               ALICE,
                               BOB,
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

S = "S-e"
P, A, B, CF = sid("CA", "e", 0), sid("CA", "e", 1), sid("CA", "e", 2), sid("CF", "e", 0)
conf = context(S)
ctx_a, ctx_b = context(S, **ALICE), context(S, **BOB)
agent = {"direction": "outbound-api", "frm": OUR_NUMBER, "to": "client:alice"}
transfer = {"direction": "outbound-api", "frm": OUR_NUMBER, "to": "client:bob"}
both = ("alice", "bob")

FLOW = Flow(
    name="e",
    session=S,
    steps=[
        participant(CF, "participant-join", 1, 1, conf, expect("Ringing"), P, "customer"),
        call(A, "initiated", 0, 2, ctx_a, expect("Ringing", "alice"), **agent),
        call(A, "ringing", 1, 3, ctx_a, expect("Ringing", "alice"), **agent),
        call(A, "in-progress", 2, 8, ctx_a, expect("Connected", "alice"), **agent),
        participant(CF, "participant-join", 2, 8, conf, expect("Connected", "alice"), A, "agent"),
        conference(CF, "conference-start", 3, 8, conf, expect("Connected", "alice")),
        participant(CF, "participant-hold", 4, 20, conf, expect("Hold", "alice"), P, "customer", hold=True),
        call(B, "initiated", 0, 21, ctx_b, expect("Hold", *both), **transfer),
        call(B, "ringing", 1, 22, ctx_b, expect("Hold", *both), **transfer),
        call(B, "in-progress", 2, 27, ctx_b, expect("Hold", *both), **transfer),
        participant(CF, "participant-join", 5, 27, conf, expect("Hold", *both), B, "transfer"),
        participant(CF, "participant-unhold", 6, 40, conf, expect("Connected", *both), P, "customer"),
        participant(CF, "participant-leave", 7, 50, conf, expect("Connected", "bob"), A, "agent",
                    ParticipantCallStatus="completed", ReasonParticipantLeft="participant_updated_via_api"),
        call(A, "completed", 3, 50, ctx_a, expect("Connected", "bob"), **agent, CallDuration=42),
        participant(CF, "participant-modify", 8, 55, conf, expect("Connected", "bob"), B, "transfer",
                    EndConferenceOnExit=True),
        participant(CF, "participant-leave", 9, 120, conf, expect("Passive", "bob"), B, "transfer",
                    ParticipantCallStatus="completed", ReasonParticipantLeft="participant_hung_up"),
        participant(CF, "participant-leave", 10, 120, conf, expect("Passive", "bob"), P, "customer",
                    ParticipantCallStatus="in-progress", ReasonParticipantLeft="moderator_ended_conference"),
        conference(CF, "conference-end", 11, 120, conf, expect("Passive", "bob"),
                   ReasonConferenceEnded="participant-with-end-conference-on-exit-left",
                   CallSidEndingConference=B),
        call(B, "completed", 3, 120, ctx_b, expect("Passive", "bob"), **transfer, CallDuration=93),
        call(P, "completed", 0, 121, number_level(), expect(None), direction="inbound", frm=CUSTOMER,
             to=OUR_NUMBER, CallDuration=121),
    ],
    final={
        "ended": True, "callState": "Disconnected", "direction": "Incoming", "conferenceSid": CF,
        "mostRecentParticipantCallSid": B, "answeredById": "E-bob", "answeredByName": "Bob",
        "wasMissed": False, "outcome": "completed", "dateCompleted": iso(121), "members": [],
    },
)
