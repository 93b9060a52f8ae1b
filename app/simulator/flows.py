"""The six call flows of the Twilio reference (§7 (a)-(f)) as timed steps (pure).

A step is a Twilio callback (path, the context the platform put in its URL,
the form fields) or a platform event, at a moment of *call time* (seconds
after the call began); the runner plays them at a chosen speed and stamps
each with the time it is sent. Callbacks carry what Twilio would: each leg's
`SequenceNumber` in firing order, `ParentCallSid` only on `<Dial>` children,
terminal `CallDuration`/`SipResponseCode`. Legs whose StatusCallback is fixed
on the number or TwiML App carry no session in their URL, as in real life:
the service links them through their child legs or conference.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from app.simulator.cast import TOPICS, Account, Agent, Customer, sid

STATUS: Final = "/twilio/status"
CONFERENCE: Final = "/twilio/conference"
NOTES: Final = ("verified the caller", "opened a ticket", "checked the order history", "sent a follow-up email",
                "escalated to billing", "updated the address", "offered a discount", "scheduled a callback")


@dataclass(frozen=True)
class Callback:
    path: str
    query: dict[str, str]  # the platform's context, part of the signed URL
    params: dict[str, str]  # form fields; `Timestamp` is added when sent


@dataclass(frozen=True)
class PlatformEvent:
    type: str
    event_id: str  # unique in the call: a resent step is a duplicate, never a second change
    body: dict[str, Any]  # the fields after type/eventId/accountId/sessionId/occurredAt


@dataclass(frozen=True)
class Step:
    at: float
    action: Callback | PlatformEvent


@dataclass(frozen=True)
class Call:
    flow: str
    account: Account
    session_id: str
    agents: tuple[Agent, ...]
    customer: Customer
    steps: tuple[Step, ...]

    @property
    def length(self) -> float:
        return self.steps[-1].at if self.steps else 0.0


@dataclass
class _Script:
    """Builds one call's steps; numbers each leg's callbacks in firing order."""

    account: Account
    session_id: str
    customer: Customer
    steps: list[Step] = field(default_factory=list)
    _seq: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def leg(self, agent: Agent | None = None, role: str | None = None, display: str | None = None) -> dict[str, str]:
        ctx = {"accountId": self.account.account_id, "sessionId": self.session_id}
        if agent is not None:
            ctx.update(endpointId=agent.endpoint_id, role=role or "Agent", displayName=agent.name)
        elif role:
            ctx["role"] = role
        if display:
            ctx["displayName"] = display
        return ctx

    def number_level(self) -> dict[str, str]:
        """A StatusCallback fixed on the number or TwiML App: it knows no session."""
        return {"accountId": self.account.account_id}

    def status(self, at: float, call_sid: str, status: str, ctx: dict[str, str], *, direction: str, frm: str,
               to: str, parent: str | None = None, **extra: object) -> None:
        params = {"AccountSid": self.account.twilio_sid, "ApiVersion": "2010-04-01", "CallSid": call_sid,
                  "CallStatus": status, "Direction": direction, "From": frm, "To": to, "Caller": frm, "Called": to,
                  "CallbackSource": "call-progress-events", "SequenceNumber": str(self._next(call_sid)),
                  **{k: str(v) for k, v in extra.items()}}
        if parent:
            params["ParentCallSid"] = parent
        self.steps.append(Step(at, Callback(STATUS, ctx, params)))

    def conference(self, at: float, conference_sid: str, event: str, *, call_sid: str | None = None,
                   label: str | None = None, **extra: object) -> None:
        params = {"AccountSid": self.account.twilio_sid, "ConferenceSid": conference_sid,
                  "FriendlyName": f"room-{self.session_id}", "StatusCallbackEvent": event,
                  "SequenceNumber": str(self._next(conference_sid) + 1),
                  **{k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in extra.items()}}
        if call_sid:
            params.update(CallSid=call_sid, ParticipantLabel=label or "", Coaching="false")
            params.setdefault("Hold", "false")
            params.setdefault("Muted", "false")
        self.steps.append(Step(at, Callback(CONFERENCE, self.leg(), params)))

    def event(self, at: float, type_: str, **body: Any) -> None:
        self.steps.append(Step(at, PlatformEvent(type_, f"{self.session_id}-{len(self.steps)}", body)))

    def opening(self, rng: random.Random, **session: Any) -> None:
        """The platform opens the session when the call reaches it (it knows the customer)."""
        self.event(0.0, "session.upsert", session={
            "accountName": self.account.name, "customerId": self.customer.customer_id,
            "customerName": self.customer.name, "fromName": self.customer.name, "channel": "Voice",
            "displayName": rng.choice(TOPICS), **session})

    def note(self, at: float, agent: Agent, rng: random.Random) -> None:
        self.event(at, "session.log", message=f"{agent.name}: {rng.choice(NOTES)}")

    def _next(self, key: str) -> int:
        n = self._seq[key]
        self._seq[key] = n + 1
        return n


def _minutes(seconds: float) -> int:
    return max(1, math.ceil(seconds / 60))


def inbound_answered(s: _Script, rng: random.Random, agents: tuple[Agent, ...]) -> None:
    """(a) The number's TwiML `<Dial>`s the agent's browser client, who answers."""
    agent, cust, acct = agents[0], s.customer, s.account
    p, c = sid("CA", s.session_id, "p"), sid("CA", s.session_id, "c")
    ring, talk = rng.uniform(3, 12), rng.uniform(25, 150)
    child = {"direction": "outbound-dial", "frm": cust.number, "to": agent.client, "parent": p}
    s.opening(rng, direction="Incoming", fromAddress=cust.number, toAddress=acct.number)
    s.status(0.5, c, "initiated", s.leg(agent), **child)
    s.status(1.0, c, "ringing", s.leg(agent), **child)
    s.status(ring, c, "in-progress", s.leg(agent), **child)
    s.note(ring + rng.uniform(3, talk / 2), agent, rng)
    s.status(ring + talk, c, "completed", s.leg(agent), **child, CallDuration=int(talk), Duration=_minutes(talk),
             SipResponseCode=200)
    s.status(ring + talk + 1, p, "completed", s.number_level(), direction="inbound", frm=cust.number,
             to=acct.number, CallDuration=int(ring + talk + 1), Duration=_minutes(ring + talk))


def queued(s: _Script, rng: random.Random, agents: tuple[Agent, ...]) -> None:
    """(b) The caller waits in a queue; an agent's offer dequeues them (or they give up)."""
    agent, cust, acct = agents[0], s.customer, s.account
    p, a = sid("CA", s.session_id, "p"), sid("CA", s.session_id, "a")
    wait, talk = rng.uniform(8, 40), rng.uniform(20, 120)
    customer = {"direction": "inbound", "frm": cust.number, "to": acct.number}
    s.opening(rng, direction="Incoming", fromAddress=cust.number, toAddress=acct.number, queueState="Queued",
              ringQueueId="support")
    s.event(1.0, "session.log", message="queued in support")
    if rng.random() < 0.2:  # abandoned while waiting
        s.status(wait, p, "completed", s.leg(role="Caller"), **customer, CallDuration=int(wait))
        return
    offer = {"direction": "outbound-api", "frm": acct.number, "to": agent.client}
    s.status(wait - 6, a, "initiated", s.leg(agent), **offer)
    s.status(wait - 5, a, "ringing", s.leg(agent), **offer)
    s.status(wait, a, "in-progress", s.leg(agent), **offer)
    s.event(wait + 0.2, "session.upsert", session={"queueState": "Connected"})
    s.note(wait + rng.uniform(3, talk / 2), agent, rng)
    s.status(wait + talk, p, "completed", s.leg(role="Caller"), **customer, CallDuration=int(wait + talk))
    s.status(wait + talk + 0.5, a, "completed", s.leg(agent), **offer, CallDuration=int(talk))


def missed(s: _Script, rng: random.Random, agents: tuple[Agent, ...]) -> None:
    """(c) The agent does not answer (voicemail follows), or the caller gives up while it rings."""
    agent, cust, acct = agents[0], s.customer, s.account
    p, c = sid("CA", s.session_id, "p"), sid("CA", s.session_id, "c")
    child = {"direction": "outbound-dial", "frm": cust.number, "to": agent.client, "parent": p}
    s.opening(rng, direction="Incoming", fromAddress=cust.number, toAddress=acct.number)
    s.status(0.5, c, "initiated", s.leg(agent), **child)
    s.status(1.0, c, "ringing", s.leg(agent), **child)
    if rng.random() < 0.5:
        end = rng.uniform(20, 30)
        s.status(end, c, "no-answer", s.leg(agent), **child, CallDuration=0, SipResponseCode=487)
        voicemail = rng.uniform(5, 20)
        s.event(end + voicemail, "session.log", message=f"voicemail left ({int(voicemail)}s)")
        end += voicemail
    else:
        end = rng.uniform(5, 15)
        s.status(end, c, "canceled", s.leg(agent), **child, CallDuration=0)
    s.status(end + 1, p, "completed", s.number_level(), direction="inbound", frm=cust.number, to=acct.number,
             CallDuration=int(end + 1))


def _conference_start(s: _Script, rng: random.Random, agent: Agent, p: str, a: str, cf: str) -> float:
    """The caller waits in a conference; the agent's REST-created leg joins. Returns when."""
    acct = s.account
    s.opening(rng, direction="Incoming", fromAddress=s.customer.number, toAddress=acct.number)
    s.conference(0.5, cf, "participant-join", call_sid=p, label="customer", EndConferenceOnExit=False,
                 StartConferenceOnEnter=True)
    offer = {"direction": "outbound-api", "frm": acct.number, "to": agent.client}
    ring = rng.uniform(3, 10)
    s.status(1.0, a, "initiated", s.leg(agent), **offer)
    s.status(1.5, a, "ringing", s.leg(agent), **offer)
    s.status(ring, a, "in-progress", s.leg(agent), **offer)
    s.conference(ring + 0.2, cf, "participant-join", call_sid=a, label="agent", EndConferenceOnExit=True,
                 StartConferenceOnEnter=True)
    s.conference(ring + 0.3, cf, "conference-start")
    return ring


def _hold(s: _Script, at: float, cf: str, p: str, agent: Agent, hold: bool) -> None:
    """Twilio reports the hold; the platform, which knows who pressed it, says so."""
    s.conference(at, cf, "participant-hold" if hold else "participant-unhold", call_sid=p, label="customer",
                 Hold=hold)
    held = {"heldByUserId": agent.user_id, "holdQueueName": "Hold music"} if hold else \
        {"heldByUserId": None, "holdQueueName": None}
    s.event(at + 0.2, "session.upsert", session=held)


def _conference_end(s: _Script, at: float, cf: str, p: str, last: str, label: str) -> None:
    s.conference(at, cf, "participant-leave", call_sid=last, label=label, ParticipantCallStatus="completed",
                 ReasonParticipantLeft="participant_hung_up")
    s.conference(at, cf, "participant-leave", call_sid=p, label="customer", ParticipantCallStatus="in-progress",
                 ReasonParticipantLeft="moderator_ended_conference")
    s.conference(at + 0.1, cf, "conference-end", ReasonConferenceEnded="participant-with-end-conference-on-exit-left",
                 CallSidEndingConference=last)


def conference_hold(s: _Script, rng: random.Random, agents: tuple[Agent, ...]) -> None:
    """(d) In a conference the agent holds and resumes the caller, mutes and unmutes, then hangs up."""
    agent, cust, acct = agents[0], s.customer, s.account
    p, a, cf = sid("CA", s.session_id, "p"), sid("CA", s.session_id, "a"), sid("CF", s.session_id)
    ring = _conference_start(s, rng, agent, p, a, cf)
    talk = rng.uniform(45, 160)
    hold_at = ring + rng.uniform(8, talk / 3)
    unhold_at = hold_at + rng.uniform(8, 25)
    mute_at = unhold_at + rng.uniform(3, 10)
    s.note(ring + 4, agent, rng)
    _hold(s, hold_at, cf, p, agent, True)
    _hold(s, unhold_at, cf, p, agent, False)
    s.conference(mute_at, cf, "participant-mute", call_sid=a, label="agent", Muted=True)
    s.conference(mute_at + rng.uniform(3, 8), cf, "participant-unmute", call_sid=a, label="agent")
    end = max(ring + talk, mute_at + 12)
    _conference_end(s, end, cf, p, a, "agent")
    offer = {"direction": "outbound-api", "frm": acct.number, "to": agent.client}
    s.status(end + 0.2, a, "completed", s.leg(agent), **offer, CallDuration=int(end - ring))
    s.status(end + 1, p, "completed", s.number_level(), direction="inbound", frm=cust.number, to=acct.number,
             CallDuration=int(end + 1))


def warm_transfer(s: _Script, rng: random.Random, agents: tuple[Agent, ...]) -> None:
    """(e) The agent holds the caller, brings in a colleague, unholds, and drops out."""
    first, second = agents[0], agents[1] if len(agents) > 1 else agents[0]
    cust, acct = s.customer, s.account
    p, a, b = (sid("CA", s.session_id, leg) for leg in ("p", "a", "b"))
    cf = sid("CF", s.session_id)
    ring = _conference_start(s, rng, first, p, a, cf)
    hold_at = ring + rng.uniform(10, 30)
    _hold(s, hold_at, cf, p, first, True)
    transfer = {"direction": "outbound-api", "frm": acct.number, "to": second.client}
    joined = hold_at + rng.uniform(4, 10)
    s.status(hold_at + 1, b, "initiated", s.leg(second, role="Transfer"), **transfer)
    s.status(hold_at + 2, b, "ringing", s.leg(second, role="Transfer"), **transfer)
    s.status(joined, b, "in-progress", s.leg(second, role="Transfer"), **transfer)
    s.conference(joined + 0.2, cf, "participant-join", call_sid=b, label="transfer")
    s.event(joined + 1, "session.log", message=f"{first.name}: briefing {second.name}")
    unhold_at = joined + rng.uniform(8, 20)
    _hold(s, unhold_at, cf, p, first, False)
    left = unhold_at + rng.uniform(3, 8)
    s.conference(left, cf, "participant-leave", call_sid=a, label="agent", ParticipantCallStatus="completed",
                 ReasonParticipantLeft="participant_updated_via_api")
    offer = {"direction": "outbound-api", "frm": acct.number, "to": first.client}
    s.status(left + 0.2, a, "completed", s.leg(first), **offer, CallDuration=int(left - ring))
    s.conference(left + 2, cf, "participant-modify", call_sid=b, label="transfer", EndConferenceOnExit=True)
    end = left + rng.uniform(20, 90)
    s.note(left + 5, second, rng)
    _conference_end(s, end, cf, p, b, "transfer")
    s.status(end + 0.2, b, "completed", s.leg(second, role="Transfer"), **transfer, CallDuration=int(end - joined))
    s.status(end + 1, p, "completed", s.number_level(), direction="inbound", frm=cust.number, to=acct.number,
             CallDuration=int(end + 1))


def outbound_busy(s: _Script, rng: random.Random, agents: tuple[Agent, ...]) -> None:
    """(f) The agent's softphone calls a customer; the line is busy, or the call fails."""
    agent, cust, acct = agents[0], s.customer, s.account
    a, c = sid("CA", s.session_id, "a"), sid("CA", s.session_id, "c")
    s.opening(rng, direction="Outgoing", endpointId=agent.endpoint_id, endpointName=f"{agent.name}'s softphone",
              displayName=f"Call to {cust.name}")
    callee = {"direction": "outbound-dial", "frm": acct.number, "to": cust.number, "parent": a}
    ctx = s.leg(display=cust.name)
    s.status(0.5, c, "initiated", ctx, **callee)
    if rng.random() < 0.6:
        s.status(1.5, c, "ringing", ctx, **callee)
        end = rng.uniform(4, 9)
        s.status(end, c, "busy", ctx, **callee, CallDuration=0, SipResponseCode=486)
    else:
        end = rng.uniform(1.5, 3)
        s.status(end, c, "failed", ctx, **callee, CallDuration=0, SipResponseCode=404)
    s.status(end + 1, a, "completed", s.number_level(), direction="inbound", frm=agent.client, to=cust.number,
             CallDuration=int(end + 1))


Builder = Callable[[_Script, random.Random, tuple[Agent, ...]], None]
FLOWS: Final[dict[str, tuple[str, Builder, int]]] = {
    # letter: (name, builder, how many agents it needs)
    "a": ("inbound-answered", inbound_answered, 1),
    "b": ("queued", queued, 1),
    "c": ("missed", missed, 1),
    "d": ("conference-hold", conference_hold, 1),
    "e": ("warm-transfer", warm_transfer, 2),
    "f": ("outbound-busy", outbound_busy, 1),
}
WEIGHTS: Final = {"a": 30, "b": 20, "c": 10, "d": 20, "e": 10, "f": 10}


def build_call(letter: str, account: Account, session_id: str, agents: tuple[Agent, ...], customer: Customer,
               rng: random.Random) -> Call:
    name, builder, _ = FLOWS[letter]
    script = _Script(account, session_id, customer)
    builder(script, rng, agents)
    steps = tuple(sorted(script.steps, key=lambda step: step.at))  # stable: same-time steps keep firing order
    return Call(name, account, session_id, agents, customer, steps)
