"""Resume: replay exactly the missed patches, or say why a snapshot is needed."""

import asyncio
import json
from typing import Any

import jsonpatch
import msgspec

from app.storage import keys
from app.domain.changes import Change, make_entry, wire
from app.live import resume
from app.domain.positions import Position
from app.live.resume import Reset, Start, decide
from app.live.views import Viewer
from app.domain.dtos import SessionInfo
from app.domain.records import SessionRecord
from app.storage.session_store import SessionStore

E1 = Viewer("A", "E1", False)
MANAGER = Viewer("A", None, True)


def history() -> list[Change]:
    """S1 on E1 rings, connects; S2 on E2 rings; S1 ends."""
    s1 = SessionInfo(id="S1", account_id="A", endpoint_id="E1", call_state="Ringing")
    s1b = msgspec.structs.replace(s1, call_state="Connected")
    s2 = SessionInfo(id="S2", account_id="A", endpoint_id="E2", call_state="Ringing")
    s1c = msgspec.structs.replace(s1b, ended=True, call_state="Disconnected")
    entries = [make_entry(None, s1, 1), make_entry(s1, s1b, 2), make_entry(None, s2, 1), make_entry(s1b, s1c, 3)]
    return [Change(account_id="A", epoch="e", cursor=i, entry=e) for i, e in enumerate(entries, 1)]


def replay(result: Start | Reset) -> list[dict[str, Any]]:
    assert isinstance(result, Start), result
    return [json.loads(m.text) for m in result.messages]


def test_replays_only_what_the_viewer_sees_and_says_so_first() -> None:
    changes = history()[1:]  # the client is at e:1
    msgs = replay(decide(Position("e", 1), "e", 4, changes, E1, budget=10_000))
    assert msgs[0] == {"type": "resumed", "epoch": "e", "cursor": 1, "replayed": 2}
    assert [m["cursor"] for m in msgs[1:]] == [2, 4]  # S2 (E2 only) is not replayed
    state = jsonpatch.apply_patch({"S1": history()[0].entry.session}, msgs[1]["ops"])
    assert state["S1"]["callState"] == "Connected"
    assert jsonpatch.apply_patch(state, msgs[2]["ops"]) == {}


def test_the_end_position_counts_changes_the_viewer_did_not_see() -> None:
    result = decide(Position("e", 2), "e", 3, history()[2:3], E1, budget=10_000)
    assert isinstance(result, Start) and result.cursor == 3 and len(result.messages) == 1


def test_nothing_missed_is_an_empty_resume() -> None:
    result = decide(Position("e", 4), "e", 4, [], MANAGER, budget=10_000)
    assert isinstance(result, Start) and (result.epoch, result.cursor) == ("e", 4)
    assert replay(result) == [{"type": "resumed", "epoch": "e", "cursor": 4, "replayed": 0}]


def test_reasons_for_a_fresh_snapshot() -> None:
    assert decide(Position("old", 1), "e", 4, history(), E1, 10_000) == Reset("epoch")
    assert decide(Position("", 1), "e", 4, history(), E1, 10_000) == Reset("epoch")
    assert decide(Position("e", 9), "e", 4, [], E1, 10_000) == Reset("ahead")
    assert decide(Position("e", 1), "e", 4, None, E1, 10_000) == Reset("trimmed")
    assert decide(Position("e", 0), "e", 4, history(), MANAGER, budget=100) == Reset("too-far")


def setting(**changes: Any) -> Any:
    def transition(current: SessionRecord | None) -> SessionRecord:
        base = current.info if current else SessionInfo()
        return SessionRecord(info=msgspec.structs.replace(base, **changes), meta={})
    return transition


async def test_start_against_the_store(store: SessionStore) -> None:
    await store.commit("A", "S1", setting(endpoint_id="E1", call_state="Ringing"))
    first = await resume.start(store, E1, None, max_changes=100, budget=10_000)
    assert first.outcome == "snapshot" and first.cursor == 1
    snap = json.loads(first.messages[0].text)
    assert snap["sessions"] == {"S1": wire((await store.get("A", "S1")).info)} and "reset" not in snap  # type: ignore[union-attr]

    await store.commit("A", "S1", setting(call_state="Connected"))
    again = await resume.start(store, E1, Position(first.epoch, 1), max_changes=100, budget=10_000)
    assert again.outcome == "resumed" and again.cursor == 2 and len(again.messages) == 2

    await store.redis.client.xtrim(keys.changes("A"), maxlen=0)
    await store.commit("A", "S1", setting(call_state="Hold"))
    trimmed = await resume.start(store, E1, Position(first.epoch, 1), max_changes=100, budget=10_000)
    assert trimmed.outcome == "reset" and trimmed.cursor == 3
    assert json.loads(trimmed.messages[0].text)["reset"] is True

    other = await resume.start(store, E1, Position("another-epoch", 3), max_changes=100, budget=10_000)
    assert other.outcome == "reset"
    too_many = await resume.start(store, E1, Position(first.epoch, 2), max_changes=0, budget=10_000)
    assert too_many.outcome == "reset"


async def test_a_commit_racing_the_log_read_is_never_taken_for_a_trim(store: SessionStore) -> None:
    """Regression: changes_since once read the head after the log, so a commit
    landing in between made an up-to-date client look trimmed (a needless reset).
    Now the head and the log are read in one batch, in that order, on the
    account's node; commits racing it in every interleaving never look like a trim."""
    await store.commit("A", "S1", setting(endpoint_id="E1"))
    for n in range(30):
        reads = [store.changes_since("A", 1 + n) for _ in range(3)]
        results = await asyncio.gather(store.commit("A", "S1", setting(destination=str(n))), *reads,
                                       asyncio.sleep(0), store.changes_since("A", 1 + n))
        assert all(r is not None for r in results[1:4] + results[5:])
