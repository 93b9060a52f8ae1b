"""Per-viewer patches: checked by applying them with the independent `jsonpatch`."""

from typing import Any

import jsonpatch
import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.changes import make_entry, wire
from app.live.views import ops_for, seen
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
