"""What Twilio's answer does to a session (pure): an ordinary fact through the webhooks'
own transition, idempotent, and never in the way of a real callback that comes late."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from app.domain.dtos import SessionCallState
from app.sweep import answers
from app.sweep.answers import CallAnswer, Gone
from app.twilio import facts
from app.twilio.callbacks import CallbackInvalid, parse
from app.twilio.transitions import apply
from tests.sweep.calls import ACCOUNT_SID, AGENT, CUSTOMER, T0, answered, ringing, status
from tests.sweep.test_selection import record_of

NOW = T0 + timedelta(hours=5)


def completed(call_sid: str, minutes: int = 7) -> CallAnswer:
    return CallAnswer(call_sid=call_sid, account_sid=ACCOUNT_SID, status="completed", date_created=T0,
                      start_time=T0, end_time=T0 + timedelta(minutes=minutes), duration=minutes * 60)


def test_a_completed_answer_ends_the_session_with_that_outcome_at_twilios_end_time() -> None:
    record = record_of(answered())
    for sid in (CUSTOMER, AGENT):
        fact = answers.fact_for(completed(sid), "in-progress", NOW)
        assert fact is not None and fact.sequence_number == facts.swept_seq("completed")
        record = apply(record, fact) or record
    info = record.info
    assert info.ended and info.outcome == "completed" and info.was_missed is False
    assert info.date_completed == "2024-05-01T10:07:00.000Z"
    assert info.call_state is SessionCallState.DISCONNECTED
    assert info.log is not None and info.log[-1].message == (
        f"call {AGENT} completed 420s, per Twilio's API (seq {facts.swept_seq('completed')})")


def test_the_same_answer_twice_changes_nothing() -> None:
    record = record_of(answered())
    fact = answers.fact_for(completed(CUSTOMER), "in-progress", NOW)
    assert fact is not None
    once = apply(record, fact)
    assert once is not None
    assert apply(once, fact) is None
    again = answers.fact_for(completed(CUSTOMER), "in-progress", NOW + timedelta(minutes=5))
    assert again == fact  # the same answer later is the same fact
    lost = answers.fact_for(Gone(CUSTOMER, ACCOUNT_SID), "ringing", NOW)
    lost_later = answers.fact_for(Gone(CUSTOMER, ACCOUNT_SID), "ringing", NOW + timedelta(minutes=5))
    assert lost is not None and lost_later is not None
    gone = apply(record_of(ringing()), lost)
    assert gone is not None and apply(gone, lost_later) is None  # same leg, same status: one fact


def test_an_answer_the_session_already_knows_is_no_fact() -> None:
    still = CallAnswer(call_sid=CUSTOMER, account_sid=ACCOUNT_SID, status="in-progress", start_time=T0)
    assert answers.fact_for(still, "in-progress", NOW) is None
    unknown = CallAnswer(call_sid=CUSTOMER, account_sid=ACCOUNT_SID, status="answered-by-aliens")
    assert answers.fact_for(unknown, "ringing", NOW) is None


def test_a_call_twilio_no_longer_knows_ends_lost() -> None:
    fact = answers.fact_for(Gone(CUSTOMER, ACCOUNT_SID), "ringing", NOW)
    assert fact is not None and fact.call_status == facts.LOST and fact.timestamp == answers.iso(NOW)
    record = apply(record_of(ringing()), fact)
    assert record is not None
    info = record.info
    assert info.ended and info.outcome == "lost" and info.was_missed is True and info.members == []
    assert info.log is not None and info.log[-1].message == (
        f"call {CUSTOMER} lost: Twilio's API no longer knows it (seq {facts.swept_seq('lost')})")


def test_a_real_callback_after_the_sweep_still_sets_the_outcome() -> None:
    """Lost by the sweep, then the real `completed` callbacks arrive after all: they were
    fired first (lower SequenceNumber), so they are the legs' ends."""
    record = record_of(answered())
    for sid in (CUSTOMER, AGENT):
        fact = answers.fact_for(Gone(sid, ACCOUNT_SID), "in-progress", NOW)
        assert fact is not None
        record = apply(record, fact) or record
    assert record.info.outcome == "lost"
    end = T0 + timedelta(minutes=3)
    for cb in (status(AGENT, "completed", 3, end, agent=True), status(CUSTOMER, "completed", 2, end)):
        record = apply(record, cb[2]) or record
    assert record.info.ended and record.info.outcome == "completed"
    assert record.info.date_completed == "2024-05-01T10:03:00.000Z"


def test_a_later_status_from_twilio_moves_a_stuck_leg_on() -> None:
    """Rang, its in-progress callback was lost: Twilio says in-progress, from its start time."""
    record = record_of(ringing())
    answer = CallAnswer(call_sid=CUSTOMER, account_sid=ACCOUNT_SID, status="in-progress",
                        start_time=T0 + timedelta(seconds=4))
    fact = answers.fact_for(answer, "ringing", NOW)
    assert fact is not None and fact.timestamp == "2024-05-01T10:00:04.000Z"
    moved = apply(record, fact)
    assert moved is not None and not moved.info.ended
    assert moved.info.date_last_modified == "2024-05-01T10:00:04.000Z"


def test_a_stale_mark_is_a_log_line_filed_once() -> None:
    record = record_of(ringing())
    entry = answers.stale_entry("2024-05-01T10:00:00.000Z", "no Twilio credentials for AC…", NOW)
    marked = answers.mark_stale(record, entry)
    assert marked is not None and answers.is_stale(marked)
    assert marked.info.log is not None and marked.info.log[-1] == entry
    assert entry.message == "stale: nothing heard since 2024-05-01T10:00:00.000Z; no Twilio credentials for AC…"
    assert answers.mark_stale(marked, entry) is None
    # Only the log changed: the published fields and their shape are as before.
    before, after = msgspec.to_builtins(record.info), msgspec.to_builtins(marked.info)
    assert {k: v for k, v in after.items() if k != "log"} == {k: v for k, v in before.items() if k != "log"}
    ended = record_of([*ringing(), status(CUSTOMER, "completed", 1, T0)])
    assert answers.mark_stale(ended, entry) is None


def test_a_callback_after_the_mark_clears_it() -> None:
    record = answers.mark_stale(record_of(ringing()), answers.stale_entry("x", "why", T0 + timedelta(minutes=9)))
    assert record is not None
    later = apply(record, status(CUSTOMER, "in-progress", 1, T0 + timedelta(minutes=10))[2])
    assert later is not None and not answers.is_stale(later)


def test_lost_is_the_sweeps_word_only_a_callback_cannot_say_it() -> None:
    query, form, _ = status(CUSTOMER, "ringing", 1, T0)
    with pytest.raises(CallbackInvalid, match="CallStatus"):
        parse("status", query, [(k, "lost" if k == "CallStatus" else v) for k, v in form])
