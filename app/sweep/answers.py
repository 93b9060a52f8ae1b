"""What Twilio's answer means for a session (pure).

An answer about a call becomes an ordinary status fact (`CallStatus`), numbered
by `facts.swept_seq`, applied by the same ingest and commit as a webhook: the
same answer twice is one fact, and a real callback that comes late still wins
(see app/twilio/facts.py). A call Twilio no longer knows ends with status `lost`.
A session the sweep cannot ask about is marked stale: a log line, which is all
the published `SessionInfo` can carry (docs/twilio.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import msgspec

from app.domain.dtos import SessionLogInfo
from app.domain.records import SessionRecord
from app.twilio import facts
from app.twilio.callbacks import CALL_STATUSES, CallStatus, Context
from app.twilio.transitions import MAX_LOG

STALE_PREFIX: Final = "stale: "  # a log line starting so marks the session stale (the console shows it)


@dataclass(frozen=True, slots=True)
class CallAnswer:
    """What Twilio's Calls resource says about one call (`GET /2010-04-01/Accounts/{AC}/Calls/{CA}.json`)."""

    call_sid: str
    account_sid: str
    status: str
    date_created: datetime | None = None
    date_updated: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration: int | None = None


@dataclass(frozen=True, slots=True)
class Gone:
    """Twilio answered 404: it does not know the call (any more)."""

    call_sid: str
    account_sid: str


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fact_for(answer: CallAnswer | Gone, known: str | None, now: datetime) -> CallStatus | None:
    """The fact to apply, or None when the answer tells nothing new: the status the
    leg already has, or one this service does not know. Its time is Twilio's own for
    that status (end, start, last update), so the session shows when it happened;
    a call that is gone ended, as far as anyone can tell, when the sweep found out."""
    if isinstance(answer, Gone):
        status, at = facts.LOST, now
    else:
        status = answer.status
        if status == known or status not in CALL_STATUSES:
            return None
        if status in facts.ENDING:
            at = answer.end_time or answer.date_updated or now
        elif status == "in-progress":
            at = answer.start_time or answer.date_updated or now
        else:
            at = answer.date_updated or answer.date_created or now
    return CallStatus(
        call_sid=answer.call_sid, account_sid=answer.account_sid, call_status=status,
        sequence_number=facts.swept_seq(status), timestamp=iso(at),
        call_duration=answer.duration if isinstance(answer, CallAnswer) and status in facts.ENDING else None,
    )


def form_of(cb: CallStatus) -> list[tuple[str, str]]:
    """The fact as the form of a status callback: every field of it, so the idempotency
    key of the same answer is the same."""
    form = [("CallSid", cb.call_sid), ("AccountSid", cb.account_sid), ("CallStatus", cb.call_status),
            ("SequenceNumber", str(cb.sequence_number)), ("Timestamp", cb.timestamp)]
    if cb.call_duration is not None:
        form.append(("CallDuration", str(cb.call_duration)))
    return form


def in_session(cb: CallStatus, account_id: str, session_id: str) -> CallStatus:
    """The fact addressed to its session, as the platform's context in a callback URL would."""
    return msgspec.structs.replace(cb, context=Context(account_id=account_id, session_id=session_id))


def stale_entry(heard_at: str, reason: str, now: datetime) -> SessionLogInfo:
    return SessionLogInfo(date=iso(now), message=f"{STALE_PREFIX}nothing heard since {heard_at}; {reason}")


def is_stale(record: SessionRecord) -> bool:
    """Its latest log line is a stale mark (nothing has been filed after it)."""
    log = record.info.log or []
    return bool(log) and (log[-1].message or "").startswith(STALE_PREFIX)


def mark_stale(record: SessionRecord | None, entry: SessionLogInfo) -> SessionRecord | None:
    """The session with the stale mark filed last in its log; None (nothing to do) when
    it is gone, ended, already marked, or its log is full."""
    if record is None or record.info.ended or is_stale(record):
        return None
    log = list(record.info.log or [])
    if len(log) >= MAX_LOG:
        return None
    info = msgspec.structs.replace(record.info, log=[*log, entry])
    return msgspec.structs.replace(record, info=info)
