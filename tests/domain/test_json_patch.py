"""Our diff, applied by an independent JSON Patch library, gives the new document."""

import jsonpatch
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.json_patch import diff

keys_ = st.sampled_from(["a", "b", "c/d", "e~f", "log"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys_, children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys_, json_values), st.dictionaries(keys_, json_values))
def test_diff_round_trips(old: dict, new: dict) -> None:
    assert jsonpatch.apply_patch(old, diff(old, new)) == new


def test_appends_are_small() -> None:
    assert diff({"log": [1]}, {"log": [1, 2]}) == [{"op": "add", "path": "/log/1", "value": 2}]
    assert diff({"a": 1}, {"a": 1}) == []
