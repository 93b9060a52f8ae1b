"""Per-viewer patches: checked by applying them with the independent `jsonpatch`."""

from typing import Any

import jsonpatch
import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.changes import make_entry, wire
from app.live.views import ops_for, ops_for_range, seen
from app.domain.dtos import SessionInfo, SessionMemberInfo
from app.domain.visibility import Viewer, visible_sessions

MANAGER = Viewer("A", None, True)
E1 = Viewer("A", "E1", False)
E2 = Viewer("A", "E2", False)
NOBODY = Viewer("A", None, False)


def info(sid: str = "S1", **kw: Any) -> SessionInfo:
    return SessionInfo(id=sid, account_id="A", **kw)


def test_entering_view_is_an_add_of_the_whole_session() -> None:
    entry = make_entry(None, info(endpoint_id="E1", call_state="Ringing"), 1)
    assert seen(entry, E1) == (False, True) and seen(entry, E2) == (False, False)
    assert ops_for(entry, seen(entry, E1)) == [{"op": "add", "path": "/S1", "value": entry.session}]
    assert ops_for(entry, seen(entry, E2)) == []


def test_a_visible_change_is_rooted_at_the_session() -> None:
    before = info(endpoint_id="E1", call_state="Ringing")
    entry = make_entry(before, msgspec.structs.replace(before, call_state="Connected"), 2)
    assert ops_for(entry, seen(entry, MANAGER)) == [{"op": "replace", "path": "/S1/callState", "value": "Connected"}]


def test_an_ending_session_carries_its_final_fields_then_is_removed() -> None:
    before = info(endpoint_id="E1", call_state="Connected")
    after = msgspec.structs.replace(before, ended=True, call_state="Disconnected", outcome="Answered")
    entry = make_entry(before, after, 2)
    ops = ops_for(entry, seen(entry, E1))
    assert ops[-1] == {"op": "remove", "path": "/S1"} and len(ops) > 1
    state = {"S1": wire(before)}
    # The fields are visible mid-patch: apply all but the remove.
    assert jsonpatch.apply_patch(state, ops[:-1])["S1"]["outcome"] == "Answered"
    assert jsonpatch.apply_patch(state, ops) == {}


def test_leaving_view_while_active_is_only_a_remove() -> None:
    before = info(endpoint_id="E1", members=[SessionMemberInfo(identity="x", endpoint_id="E2")])
    entry = make_entry(before, msgspec.structs.replace(before, members=[]), 2)
    assert ops_for(entry, seen(entry, E2)) == [{"op": "remove", "path": "/S1"}]
    assert seen(entry, E1) == (True, True)


def test_session_ids_are_json_pointer_escaped() -> None:
    entry = make_entry(None, info("a/b~c", endpoint_id="E1"), 1)
    op = ops_for(entry, (False, True))[0]
    assert op["path"] == "/a~1b~0c"
    assert jsonpatch.apply_patch({}, [op]) == {"a/b~c": entry.session}


def test_visible_sessions_apply_the_same_rule_and_never_leak() -> None:
    blobs = [msgspec.json.encode(s) for s in (
        info("S1", endpoint_id="E1"), info("S2", endpoint_id="E2"), info("S3", endpoint_id="E1", ended=True),
        SessionInfo(id="S4", account_id="B", endpoint_id="E1"),
    )]
    assert list(visible_sessions(E1, blobs)) == ["S1"]
    assert sorted(visible_sessions(MANAGER, blobs)) == ["S1", "S2"]
    assert visible_sessions(NOBODY, blobs) == {}


_versions = st.builds(
    lambda ep, member, ended, state, note: info(
        endpoint_id=ep, ended=ended, call_state=state, display_name=note,
        members=[SessionMemberInfo(identity="m", endpoint_id=member)] if member else None),
    st.sampled_from([None, "E1", "E2"]), st.sampled_from([None, "E1", "E2"]), st.booleans(),
    st.sampled_from(["Ringing", "Connected", "Hold"]), st.text(max_size=3),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["S1", "S2", "x/y"]), _versions), max_size=25))
def test_any_history_patched_with_jsonpatch_equals_the_visible_state(history: list[Any]) -> None:
    current: dict[str, SessionInfo] = {}
    states: dict[Viewer, dict[str, Any]] = {v: {} for v in (MANAGER, E1, E2, NOBODY)}
    for rev, (sid, version) in enumerate(history, 1):
        after = msgspec.structs.replace(version, id=sid)
        entry = make_entry(current.get(sid), after, rev)
        current[sid] = after
        for viewer, state in states.items():
            states[viewer] = jsonpatch.apply_patch(state, ops_for(entry, seen(entry, viewer)))
    blobs = [msgspec.json.encode(s) for s in current.values()]
    for viewer, state in states.items():
        expected = {k: msgspec.json.decode(v) for k, v in visible_sessions(viewer, blobs).items()}
        assert state == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["S1", "S2", "x/y"]), _versions), max_size=25), st.data())
def test_a_conflated_patch_equals_the_patches_it_replaces(history: list[Any], data: st.DataObject) -> None:
    """Any span of any history: one merged patch, applied with jsonpatch to the state where
    the span starts, gives the state the span's own patches give, and is never larger."""
    split = data.draw(st.integers(0, len(history)))
    current: dict[str, SessionInfo] = {}
    entries = []
    for rev, (sid, version) in enumerate(history, 1):
        after = msgspec.structs.replace(version, id=sid)
        entries.append(make_entry(current.get(sid), after, rev))
        current[sid] = after
    for viewer in (MANAGER, E1, E2, NOBODY):
        state: dict[str, Any] = {}
        for entry in entries[:split]:
            state = jsonpatch.apply_patch(state, ops_for(entry, seen(entry, viewer)))
        stepwise_ops = [op for entry in entries[split:] for op in ops_for(entry, seen(entry, viewer))]
        merged = ops_for_range(entries[split:], viewer)
        assert jsonpatch.apply_patch(state, merged) == jsonpatch.apply_patch(state, stepwise_ops)
        assert len(msgspec.json.encode(merged)) <= len(msgspec.json.encode(stepwise_ops))


def test_a_conflated_patch_shows_a_session_s_end_only_to_who_saw_it_end() -> None:
    ringing = info(endpoint_id="E1", members=[SessionMemberInfo(identity="m", endpoint_id="E2")],
                   call_state="Ringing")
    e2_gone = msgspec.structs.replace(ringing, members=[])
    ended = msgspec.structs.replace(e2_gone, ended=True, call_state="Disconnected", outcome="Answered")
    entries = [make_entry(ringing, e2_gone, 2), make_entry(e2_gone, ended, 3)]
    assert ops_for_range(entries, E2) == [{"op": "remove", "path": "/S1"}]  # it left before the end
    final = ops_for_range(entries, E1)
    assert final[0]["op"] == "replace" and final[0]["value"]["outcome"] == "Answered"
    assert final[-1] == {"op": "remove", "path": "/S1"}


def test_a_conflated_patch_of_many_changes_to_one_session_is_one_replace() -> None:
    version = info(endpoint_id="E1", call_state="Ringing")
    entries = []
    for n in range(30):
        after = msgspec.structs.replace(version, display_name=f"caller {n}", call_state=("Ringing", "Connected")[n % 2])
        entries.append(make_entry(version, after, n + 2))
        version = after
    merged = ops_for_range(entries, MANAGER)
    assert merged == [{"op": "replace", "path": "/S1", "value": entries[-1].session}]
