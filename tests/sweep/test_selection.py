"""Which sessions are stuck: pure, on records built by the webhooks' own transitions,
with the time given (no clock is read)."""

from __future__ import annotations

from datetime import timedelta

from app.domain.dtos import SessionCallState, SessionInfo
from app.domain.records import SessionRecord
from app.sweep.selection import Ask, Thresholds, candidates, stuck
from app.twilio.transitions import apply
from tests.sweep.calls import ACCOUNT_SID, AGENT, CUSTOMER, T0, answered, ringing, status

LIMITS = Thresholds(ringing_after=timedelta(minutes=3), in_progress_max=timedelta(hours=4))


def record_of(callbacks: list) -> SessionRecord:  # type: ignore[type-arg]
    record = None
    for _, _, cb in callbacks:
        record = apply(record, cb) or record
    assert record is not None
    return record


def test_a_ringing_call_is_stuck_once_it_has_rung_longer_than_allowed() -> None:
    record = record_of(ringing())
    assert stuck("S1", record, T0 + timedelta(minutes=3), LIMITS) is None  # not longer than allowed yet
    found = stuck("S1", record, T0 + timedelta(minutes=3, seconds=1), LIMITS)
    assert found is not None and found.phase == "ringing"
    assert found.asks == (Ask(CUSTOMER, ACCOUNT_SID, "ringing"),)
    assert found.heard_at == "2024-05-01T10:00:00.000Z"


def test_an_answered_call_is_stuck_only_past_the_maximum() -> None:
    record = record_of(answered())
    assert stuck("S1", record, T0 + timedelta(hours=1), LIMITS) is None
    found = stuck("S1", record, T0 + timedelta(hours=4, seconds=6), LIMITS)
    assert found is not None and found.phase == "in-progress"
    assert {a.call_sid: a.status for a in found.asks} == {CUSTOMER: "in-progress", AGENT: "in-progress"}


def test_a_caller_waiting_unanswered_in_a_queue_is_in_progress_not_ringing() -> None:
    """Twilio says in-progress once the caller's TwiML runs (<Enqueue>): no agent yet, but not stuck ringing."""
    record = record_of([status(CUSTOMER, "ringing", 0, T0), status(CUSTOMER, "in-progress", 1, T0)])
    assert record.info.call_state is SessionCallState.RINGING  # the session rings: nobody answered
    assert stuck("S1", record, T0 + timedelta(minutes=30), LIMITS) is None


def test_the_most_hurried_open_leg_sets_the_allowance() -> None:
    """An answered customer whose second agent leg rings on and on: the ringing leg's allowance."""
    calls = answered()[:2] + [status(AGENT, "ringing", 0, T0, agent=True)]
    found = stuck("S1", record_of(calls), T0 + timedelta(minutes=4), LIMITS)
    assert found is not None and found.phase == "ringing"


def test_ended_legs_are_not_asked_about() -> None:
    calls = [*answered(), status(AGENT, "completed", 3, T0 + timedelta(minutes=1), agent=True)]
    found = stuck("S1", record_of(calls), T0 + timedelta(hours=5), LIMITS)
    assert found is not None and [a.call_sid for a in found.asks] == [CUSTOMER]


def test_an_ended_session_is_never_stuck() -> None:
    record = record_of([*ringing(), status(CUSTOMER, "completed", 1, T0 + timedelta(seconds=9))])
    assert record.info.ended
    assert stuck("S1", record, T0 + timedelta(days=3), LIMITS) is None


def test_a_session_the_platform_alone_fed_goes_by_its_call_state_and_has_nothing_to_ask() -> None:
    info = SessionInfo(id="S9", call_state=SessionCallState.CONNECTED, date_created="2024-05-01T10:00:00.000Z",
                       date_last_modified="2024-05-01T10:00:00.000Z", ended=False)
    record = SessionRecord(info=info)
    assert stuck("S9", record, T0 + timedelta(hours=1), LIMITS) is None
    found = stuck("S9", record, T0 + timedelta(hours=5), LIMITS)
    assert found is not None and found.phase == "in-progress" and found.asks == ()
    ringing_info = SessionRecord(info=SessionInfo(id="S9", call_state=SessionCallState.RINGING,
                                                  date_last_modified="2024-05-01T10:00:00.000Z", ended=False))
    assert stuck("S9", ringing_info, T0 + timedelta(minutes=4), LIMITS) is not None


def test_candidates_are_the_sessions_quiet_for_longer_than_the_shortest_allowance() -> None:
    def info(sid: str, minutes: int, ended: bool = False) -> SessionInfo:
        at = (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
        return SessionInfo(id=sid, date_last_modified=at, ended=ended)

    now = T0 + timedelta(minutes=10)
    infos = [info("old", 0), info("recent", 9), info("edge", 7), info("gone", 0, ended=True),
             SessionInfo(id="undated", ended=False)]
    assert candidates(infos, now, LIMITS) == ["old"]
