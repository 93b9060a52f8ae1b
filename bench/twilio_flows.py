"""Signed Twilio status callbacks of realistic call flows, many calls in flight at once.

Flows follow the reference's section 7: (a) inbound answered by an agent's browser client,
(c) missed (agent never answers), (f) outbound softphone call that is busy. Each leg's callbacks
carry Twilio's parameters in firing order (`SequenceNumber` per leg) and the platform's context
in the signed query string; callbacks of different calls interleave at random. Requests are
signed with the service's own `compute_signature` (HMAC-SHA1 over PUBLIC_URL + path + query +
sorted params) and built before the clock starts."""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Iterator
from email.utils import formatdate
from urllib.parse import urlencode

from app.twilio.signature import compute_signature
from bench.httpclient import request_bytes
from bench.procs import PUBLIC_URL, TWILIO_TOKEN

ACCOUNT_SID = "AC" + "b" * 32
PATH = "/twilio/status"
ACCOUNTS = 50
ENDPOINTS = 20
FLOWS = (("answered", 6), ("missed", 2), ("busy", 2))
_T0 = 1_700_000_000


def _sid(prefix: str, *parts: object) -> str:
    return prefix + hashlib.md5("/".join(map(str, parts)).encode()).hexdigest()


def _stamp(t: int) -> str:
    return formatdate(t, usegmt=False).replace("-0000", "+0000")


def _leg(call_sid: str, status: str, seq: int, t: int, *, direction: str, frm: str, to: str,
         parent: str | None = None, **extra: str) -> dict[str, str]:
    p = {"AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "CallSid": call_sid, "CallStatus": status,
         "Called": to, "Caller": frm, "Direction": direction, "From": frm, "To": to,
         "SequenceNumber": str(seq), "Timestamp": _stamp(t), "CallbackSource": "call-progress-events",
         "CalledCountry": "US", "CallerCountry": "US"}
    if parent:
        p["ParentCallSid"] = parent
    p.update(extra)
    return p


def flow(kind: str, key: str, account: str, session: str, endpoint: str, t: int) -> list[tuple[dict[str, str], dict[str, str]]]:
    """One call's callbacks in firing order: (query context, form params)."""
    parent, child = _sid("CA", key, "p"), _sid("CA", key, "c")
    caller = f"+1555{int(hashlib.md5(key.encode()).hexdigest()[:7], 16) % 10_000_000:07d}"
    agent = f"client:{endpoint.lower()}"
    agent_ctx = {"accountId": account, "sessionId": session, "endpointId": endpoint, "role": "Agent",
                 "displayName": f"Agent {endpoint}"}
    caller_ctx = {"accountId": account, "sessionId": session, "role": "Caller"}
    if kind == "busy":  # (f) the agent calls out from the browser; the far end is busy
        caller_ctx = {**caller_ctx, "endpointId": endpoint, "displayName": f"Agent {endpoint}"}
        dial = {"direction": "outbound-dial", "frm": "+15559870000", "to": caller, "parent": parent}
        return [
            (caller_ctx, _leg(child, "initiated", 0, t, **dial)),
            (caller_ctx, _leg(child, "ringing", 1, t + 1, **dial)),
            (caller_ctx, _leg(child, "busy", 2, t + 4, **dial, CallDuration="0", Duration="0",
                              SipResponseCode="486")),
            (caller_ctx, _leg(parent, "completed", 0, t + 5, direction="inbound", frm=agent, to=caller,
                              CallDuration="5", Duration="1")),
        ]
    dial = {"direction": "outbound-dial", "frm": caller, "to": agent, "parent": parent}
    out = [(agent_ctx, _leg(child, "initiated", 0, t, **dial)),
           (agent_ctx, _leg(child, "ringing", 1, t + 1, **dial))]
    if kind == "answered":  # (a)
        out += [(agent_ctx, _leg(child, "in-progress", 2, t + 6, **dial)),
                (agent_ctx, _leg(child, "completed", 3, t + 101, **dial, CallDuration="95", Duration="2",
                                 SipResponseCode="200"))]
        end = t + 102
    else:  # (c) missed: the agent's leg times out
        out.append((agent_ctx, _leg(child, "no-answer", 2, t + 31, **dial, CallDuration="0", Duration="0",
                                    SipResponseCode="487")))
        end = t + 32
    out.append((caller_ctx, _leg(parent, "completed", 0, end, direction="inbound", frm=caller,
                                 to="+15559870000", CallDuration=str(end - t), Duration="2")))
    return out


def signed_request(ctx: dict[str, str], params: dict[str, str]) -> bytes:
    query = urlencode(ctx)
    signature = compute_signature(TWILIO_TOKEN, f"{PUBLIC_URL}{PATH}?{query}", list(params.items()))
    body = urlencode(params).encode()
    return request_bytes("POST", f"{PATH}?{query}", "127.0.0.1", body, {
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature,
        "I-Twilio-Idempotency-Token": hashlib.md5(body).hexdigest(),
        "User-Agent": "TwilioProxy/1.1"})


def interleaved(tag: str, in_flight: int, rng: random.Random) -> Iterator[bytes]:
    """Endless callbacks: `in_flight` calls at a time, each picked at random for its next
    callback; a finished call is replaced by a new one."""
    kinds = [k for k, weight in FLOWS for _ in range(weight)]
    counter = 0

    def new_call() -> list[tuple[dict[str, str], dict[str, str]]]:
        nonlocal counter
        counter += 1
        key = f"{tag}-{counter}"
        return flow(rng.choice(kinds), key, f"ing{counter % ACCOUNTS}", f"ing-{key}",
                    f"E{counter % ENDPOINTS}", _T0 + counter)[::-1]  # reversed: pop() gives the next

    calls = [new_call() for _ in range(in_flight)]
    while True:
        i = rng.randrange(len(calls))
        yield signed_request(*calls[i].pop())
        if not calls[i]:
            calls[i] = new_call()


class Callbacks:
    """Load source: `pool` callbacks signed ahead of time, then more signed on demand."""

    def __init__(self, index: int, in_flight: int, pool: int, tag: str) -> None:
        self._gen = interleaved(f"{tag}-{index}-{time.time_ns()}", in_flight, random.Random(f"{tag}-{index}"))
        self._pool = [next(self._gen) for _ in range(pool)]
        self._pool.reverse()

    def next(self) -> bytes:
        return self._pool.pop() if self._pool else next(self._gen)
