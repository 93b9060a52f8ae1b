"""The state digest (app.domain.digest): order-independent, kept by sums equal to a
from-scratch computation after any sequence of changes, the same from a session's struct,
its builtins and its stored bytes; and the same number as the browser's implementation
(app/static/state-digest.js, run in node) on the same inputs, odd strings and keys included."""

from __future__ import annotations

import json
import random
import subprocess
from typing import Any

import jsonpatch
import msgspec
from hypothesis import given, settings as hsettings, strategies as st

from app.domain import digest
from app.domain.changes import make_entry
from app.domain.dtos import SessionInfo
from app.live.views import ops_for, seen
from bench.samples import full_session_fields
from tests.support.node_tools import node
from tests.support.processes import ROOT
from tests.support.streams import VIEWERS, History, histories, history

STATE_DIGEST = ROOT / "app" / "static" / "state-digest.js"

# Strings that canonical JSON writers get wrong: escapes, controls, U+007F, line separators,
# astral characters (surrogate pairs in JS) and the private-use block they sort against.
ODD = ["", "a", "\u0000", "\u001f", "\u007f", "\b\f\n\r\t", '"', "\\", "/", "</script>", "\u2028\u2029",
       "é", "\ue000", "\uffff", "😀", "𐀀", "Ünïcødé ☎", "x/y~z", "__proto__", "constructor", "0", "-1"]
text = st.one_of(st.sampled_from(ODD), st.text(st.characters(blacklist_categories=("Cs",)), max_size=6))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=5),
    max_leaves=20,
)
states = st.dictionaries(text, st.dictionaries(text, json_values, max_size=6), max_size=6)


@given(states, st.randoms())
def test_the_digest_does_not_depend_on_order(state: dict[str, Any], rng: random.Random) -> None:
    items = list(state.items())
    rng.shuffle(items)
    assert digest.of_state(dict(items)) == digest.of_state(state)
    # ... nor on the order of keys inside a session
    shuffled = {sid: dict(sorted(s.items(), key=lambda _: rng.random())) for sid, s in state.items()}
    assert digest.of_state(shuffled) == digest.of_state(state)


@given(states, states)
def test_the_digest_of_a_union_is_the_sum(a: dict[str, Any], b: dict[str, Any]) -> None:
    b = {k: v for k, v in b.items() if k not in a}
    assert digest.of_state({**a, **b}) == (digest.of_state(a) + digest.of_state(b)) % 2**64


def test_the_hash_is_the_same_from_a_struct_its_builtins_and_its_stored_bytes() -> None:
    info = msgspec.convert({**full_session_fields(), "id": "S1", "accountId": "A1"}, SessionInfo)
    blob = msgspec.json.encode(info)
    assert digest.session_hash("S1", info) == digest.session_hash("S1", msgspec.to_builtins(info))
    assert digest.session_hash("S1", info) == digest.blob_hash("S1", blob)
    assert digest.of_blobs({"S1": blob}) == digest.of_state({"S1": json.loads(blob)})
    assert digest.text(digest.of_state({})) == "0000000000000000"


def test_the_canonical_form_is_exactly_as_documented() -> None:
    value = {"b": [True, None, 1], "a": "\u0000\n\"\\/\u007f😀", "\ue000": {}, "😀": False, "B": "é"}
    # Keys by code point: "B" < "a" < "b" < U+E000 < U+1F600; JSON.stringify's escapes; nothing else.
    expected = '{"B":"é","a":"\\u0000\\n\\"\\\\/\u007f😀","b":[true,null,1],"\ue000":{},"😀":false}'
    assert digest.canonical(value).decode() == expected
    sha = __import__("hashlib").sha256(digest.canonical({"S1": value})).digest()
    assert digest.session_hash("S1", value) == int.from_bytes(sha[:8], "big")


@hsettings(max_examples=60, deadline=None)
@given(histories(30))
def test_a_digest_kept_by_sums_equals_one_computed_from_scratch(hist: History) -> None:
    """Every viewer's digest moved by each change's delta (what the relay does) equals the
    digest of the state it holds after applying that change's patch, at every step."""
    current: dict[str, SessionInfo] = {}
    held = {name: {} for name in VIEWERS}  # type: dict[str, dict[str, Any]]
    kept: dict[str, int | None] = {name: 0 for name in VIEWERS}
    for cursor, (sid, after) in enumerate(hist, 1):
        entry = make_entry(current.get(sid), after, cursor)
        entry = msgspec.json.decode(msgspec.json.encode(entry), type=type(entry))  # as the log carries it
        current[sid] = after
        for name, viewer in VIEWERS.items():
            pair = seen(entry, viewer)
            ops = ops_for(entry, pair)
            if ops:
                held[name] = jsonpatch.apply_patch(held[name], ops)
            kept[name] = digest.advance(kept[name], digest.delta(entry.hash_before, entry.hash_after, *pair))
            assert kept[name] == digest.of_state(held[name]), (name, cursor)


def test_an_entry_without_hashes_makes_the_digest_unknown() -> None:
    assert digest.delta(None, 5, True, True) is None and digest.delta(None, 5, False, True) == 5
    assert digest.advance(3, None) is None and digest.advance(None, 3) is None
    assert digest.delta(7, None, True, False) == (-7) % 2**64 and digest.delta(None, None, False, False) == 0


# -- the browser's implementation, in node ---------------------------------------------------

NODE_DIGESTS = """
import { stateDigest, canonicalJson } from %s;
let input = '';
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  const out = JSON.parse(input).map((state) => ({ digest: stateDigest(state),
    canonical: canonicalJson(state) }));
  process.stdout.write(JSON.stringify(out));
});
"""


def random_state(rng: random.Random) -> dict[str, Any]:
    def value(depth: int) -> Any:
        kind = rng.random()
        if depth > 2 or kind < 0.5:
            return rng.choice([None, True, False, 0, -7, 2**53 - 1, rng.choice(ODD), "".join(rng.choices(ODD, k=3))])
        if kind < 0.75:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        return {rng.choice(ODD) + rng.choice(ODD): value(depth + 1) for _ in range(rng.randint(0, 5))}
    return {rng.choice(ODD) + str(i): {rng.choice(ODD): value(0) for _ in range(rng.randint(0, 6))}
            for i in range(rng.randint(0, 5))}


def sessions_state(seed: int) -> dict[str, Any]:
    last: dict[str, SessionInfo] = {}
    for sid, info in history(random.Random(seed), 12):
        last[sid] = info
    return {sid: msgspec.to_builtins(info) for sid, info in last.items()}


def test_the_browser_computes_the_same_digests_in_node() -> None:
    cases = [random_state(random.Random(seed)) for seed in range(300)]
    cases += [sessions_state(seed) for seed in range(50)]
    cases.append({"S1": msgspec.to_builtins(msgspec.convert(full_session_fields(), SessionInfo))})
    cases.append({})
    script = NODE_DIGESTS % json.dumps(STATE_DIGEST.as_uri())
    done = subprocess.run([node(), "--input-type=module", "-e", script], input=json.dumps(cases),
                          capture_output=True, text=True, timeout=60, check=True)
    got = json.loads(done.stdout)
    assert len(got) == len(cases)
    for state, js in zip(cases, got):
        assert js["canonical"] == digest.canonical(state).decode(), state
        assert js["digest"] == digest.text(digest.of_state(state)), state
    assert len({g["digest"] for g in got}) > 250  # not a constant
