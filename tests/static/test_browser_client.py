"""sessions-client.js in a real headless Chromium: its JSON Patch applier
against the independent `jsonpatch` library, its live map and events against
the same randomised stream as the server's protocol tests (tests/support/
streams.py), and its resume logic against real server processes that are
killed, drained and restarted under it, over every transport."""

from __future__ import annotations

import contextlib
import functools
import json
import random
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jsonpatch
import pytest
from playwright.sync_api import Page, Route

from app.config import Settings
from tests.support.factories import token
from tests.support.network import service_on_port
from tests.support.processes import ROOT, ServiceProcess, free_port
from tests.support.streams import ACCOUNT, SERVER_IDS, events, history, view_patches

pytest_plugins = ["tests.support.browser"]  # chromium, browser, page: one browser for every module
ORIGIN = "http://client.test"
STATIC = ROOT / "app" / "static"


def serve_static(route: Route) -> None:
    url = route.request.url
    if url.startswith(f"{ORIGIN}/static/"):
        route.fulfill(path=str(STATIC / url.removeprefix(f"{ORIGIN}/static/")), content_type="text/javascript")
    else:
        route.fulfill(body="<!doctype html><title>client tests</title>", content_type="text/html")


@pytest.fixture
def blank(page: Page) -> Page:
    """A page at an origin of its own, serving app/static from disk: no server needed."""
    page.route(f"{ORIGIN}/**", serve_static)
    page.goto(f"{ORIGIN}/")
    return page


# -- JSON Patch, against jsonpatch ----------------------------------------------------------

KEYS = ("a", "b", "x/y", "m~n", "~1", "", "__proto__", "0", "-")


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.random()
    if depth > 2 or kind < 0.4:
        return rng.choice([0, 1, -2.5, "s", "", None, True, False, "ünï"])
    if kind < 0.7:
        return {k: random_json(rng, depth + 1) for k in rng.sample(KEYS, rng.randint(0, 4))}
    return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]


def pointers(doc: Any, prefix: str = "") -> list[tuple[str, Any]]:
    out = [(prefix, doc)]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += pointers(v, f"{prefix}/{k.replace('~', '~0').replace('/', '~1')}")
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += pointers(v, f"{prefix}/{i}")
    return out


def random_op(rng: random.Random, doc: Any) -> dict[str, Any]:
    nodes = pointers(doc)
    containers = [(p, v) for p, v in nodes if isinstance(v, (dict, list))]
    inner = [p for p, _ in nodes if p] or ["/nope"]
    kind = rng.choice(["add", "add", "remove", "replace", "move", "copy", "test"])
    if rng.random() < 0.1:  # something that must fail
        return {"op": kind, "path": rng.choice(["/missing/deeper", "/a/99", "nope", "/~2"]), "value": 1, "from": "/gone"}
    if kind in ("add", "replace", "test") and rng.random() < 0.05:  # no `value`: RFC 6902 refuses it
        return {"op": kind, "path": rng.choice(inner)}
    if kind == "add" and containers:
        at, node = rng.choice(containers)
        tail = rng.choice([str(rng.randint(0, len(node))), "-"]) if isinstance(node, list) else rng.choice(KEYS)
        return {"op": "add", "path": f"{at}/{tail.replace('~', '~0').replace('/', '~1')}", "value": random_json(rng, 2)}
    path = rng.choice(inner)
    if kind in ("move", "copy"):
        return {"op": kind, "from": rng.choice(inner), "path": path}
    if kind == "test":
        value = dict(nodes)[path] if path in dict(nodes) and rng.random() < 0.7 else "no such value"
        return {"op": "test", "path": path, "value": value}
    return {"op": kind, "path": path, "value": random_json(rng, 2)} if kind == "replace" else {"op": kind, "path": path}


def cases(n: int) -> list[dict[str, Any]]:
    out = []
    for seed in range(n):
        rng = random.Random(seed)
        doc = random_json(rng) if rng.random() < 0.2 else {k: random_json(rng, 1) for k in rng.sample(KEYS, 3)}
        ops, current = [], doc
        for _ in range(rng.randint(1, 5)):
            op = random_op(rng, current)
            ops.append(op)
            with contextlib.suppress(Exception):  # an invalid op: later ops are made as if it were skipped
                current = jsonpatch.apply_patch(current, [op])
        try:
            expected: Any = {"ok": jsonpatch.apply_patch(doc, ops)}
        except Exception:  # noqa: BLE001 - jsonpatch raises several kinds; the client must refuse it too
            expected = {"error": True}
        out.append({"doc": json.dumps(doc), "ops": json.dumps(ops), "expected": expected})
    return out


APPLY = """async (cases) => {
  const { applyPatch } = await import('/static/sessions-client.js');
  return cases.map(({ doc, ops }) => {
    const original = JSON.parse(doc);
    const before = JSON.stringify(original);
    let out;
    try { out = { ok: JSON.stringify(applyPatch(original, JSON.parse(ops))) }; }
    catch (err) { out = { error: err.name + ': ' + err.message }; }
    out.untouched = JSON.stringify(original) === before;
    return out;
  });
}"""


def test_json_patch_agrees_with_the_jsonpatch_library(blank: Page) -> None:
    batch = cases(600)
    results = blank.evaluate(APPLY, [{"doc": c["doc"], "ops": c["ops"]} for c in batch])
    failures = sum("error" in r for r in results)
    assert 60 < failures < 540  # both outcomes are well covered
    for case, got in zip(batch, results):
        assert got["untouched"], case  # atomic: the input document is never changed
        if "error" in case["expected"]:
            assert "error" in got, (case, got)
        else:
            assert "ok" in got, (case, got)
            assert json.loads(got["ok"]) == case["expected"]["ok"], case


# -- the live map and its events, on the shared randomised stream --------------------------------

FAKE_SOCKET = """() => {
  window.sockets = [];
  window.WebSocket = class {
    constructor(url) { this.url = String(url); this.readyState = 0; this.sent = []; window.sockets.push(this);
      setTimeout(() => { this.readyState = 1; this.onopen?.({}); }); }
    send(text) { this.sent.push(JSON.parse(text)); }
    close(code = 1000, reason = '') { if (this.readyState === 3) return; this.readyState = 3;
      setTimeout(() => this.onclose?.({ code, reason })); }
  };
}"""

REPLAY = """async (streams) => {
  const { SessionsClient } = await import('/static/sessions-client.js');
  const results = [];
  for (const messages of streams) {
    const client = new SessionsClient({ token: 'not.checked.here' });
    const events = [];
    for (const type of ['added', 'changed', 'removed', 'reset']) {
      client.on(type, (e) => events.push({ type, id: e.id ?? null, fields: e.fields ?? null, session: e.session ?? null }));
    }
    const live = client.connect();
    while (!window.sockets.length || window.sockets.at(-1).sent.length === 0) await new Promise((r) => setTimeout(r));
    const socket = window.sockets.at(-1);
    const steps = [];
    for (const message of messages) {
      const seen = events.length;
      socket.onmessage({ data: message });
      steps.push(JSON.stringify({ state: Object.fromEntries(client.sessions), events: events.slice(seen),
                                  position: client.positionText }));
    }
    await live;
    steps.push(JSON.stringify({ auth: socket.sent[0], stats: client.stats }));
    client.close();
    results.push(steps);
  }
  return results;
}"""


def expected_events(before: dict[str, Any], ops: list[dict[str, Any]], after: dict[str, Any]) -> list[dict[str, Any]]:
    removes = {op["path"] for op in ops if op["op"] == "remove" and op["path"].count("/") == 1}
    last_states = jsonpatch.apply_patch(before, [op for op in ops if op["path"] not in removes or op["op"] != "remove"])
    out: list[dict[str, Any]] = []
    for sid in before:
        if sid not in after:
            out.append({"type": "removed", "id": sid, "fields": None, "session": last_states[sid]})
    for sid, session in after.items():
        if sid not in before:
            out.append({"type": "added", "id": sid, "fields": None, "session": session})
        elif before[sid] != session:
            changed = {k for k in {*before[sid], *session} if before[sid].get(k, ...) != session.get(k, ...)}
            out.append({"type": "changed", "id": sid, "fields": changed, "session": session})
    return out


def test_live_map_and_events_follow_the_randomised_stream(blank: Page) -> None:
    blank.evaluate(FAKE_SOCKET)
    plays: list[tuple[list[Any], list[str]]] = []
    for seed in range(40):
        for name, stream in view_patches(history(random.Random(seed), 30)).items():
            messages = [json.dumps({"type": "snapshot", "epoch": "E", "cursor": 0, "sessions": {}})]
            messages += [json.dumps({"type": "patch", "cursor": c, "ops": ops}) for c, ops in stream.patches]
            plays.append(([seed, name, stream], messages))
    results = blank.evaluate(REPLAY, [messages for _, messages in plays])
    for ([seed, name, stream], messages), steps in zip(plays, results):
        where = f"seed {seed}, viewer {name}"
        *states, tail = [json.loads(s) for s in steps]
        assert tail["auth"] == {"type": "auth", "token": "not.checked.here"}, where
        assert tail["stats"]["resets"] == 0 and tail["stats"]["patches"] == len(stream.patches), where
        before: dict[str, Any] = {}
        for (cursor, ops), expected, got in zip(stream.patches, stream.states, states[1:]):
            assert got["state"] == expected, f"{where}, cursor {cursor}"
            assert got["position"] == f"E:{cursor}", where
            want = expected_events(before, ops, expected)
            for event in got["events"]:
                event["fields"] = set(event["fields"]) if event["fields"] is not None else None
            assert got["events"] == want, f"{where}, cursor {cursor}: {ops}"
            before = expected
        assert (states[-1]["state"] if len(states) > 1 else {}) == stream.final, where


def test_backoff_is_exponential_with_full_jitter(blank: Page) -> None:
    got = blank.evaluate("""async () => {
      const { backoffDelay } = await import('/static/sessions-client.js');
      return [0, 1, 2, 3, 10].map((n) => [backoffDelay(n, 500, 15000, () => 0.999999), backoffDelay(n, 500, 15000, () => 0)]);
    }""")
    assert got == [[499, 0], [999, 0], [1999, 0], [3999, 0], [14999, 0]]


# -- against real servers: drops, restarts, drains, every transport ----------------------------

FAST = {"LIVE_PING_INTERVAL": "1", "LIVE_DRAIN_SPREAD_MS": "300", "LIVE_DRAIN_TIMEOUT": "2",
        "LIVE_POSITION_CHECK_SECONDS": "1", "LIVE_TOKEN_GRACE": "0.5"}

START = """async ({ base, clients }) => {
  const { SessionsClient } = await import('/static/sessions-client.js');
  window.live = {};
  const started = [];
  for (const [name, options] of Object.entries(clients)) {
    const client = new SessionsClient({ url: base, backoffBaseMs: 200, backoffMaxMs: 1500, ...options,
      getToken: options.next ? async () => { window.live[name].refreshed += 1; return options.next; } : null });
    const mirror = new Map();
    const statuses = [];
    client.on('added', ({ id, session }) => mirror.set(id, session));
    client.on('changed', ({ id, session }) => mirror.set(id, session));
    client.on('removed', ({ id }) => mirror.delete(id));
    client.on('status', (s) => statuses.push({ state: s.state, how: s.how ?? null, transport: s.transport ?? null,
                                                replayed: s.replayed ?? null, code: s.code ?? null }));
    window.live[name] = { client, mirror, statuses, refreshed: 0 };
    started.push(client.connect().then(() => null, (err) => err.message));
  }
  return Promise.all(started);
}"""

READ = """(name) => { const l = window.live[name]; return JSON.stringify({
  sessions: Object.fromEntries(l.client.sessions), mirror: Object.fromEntries(l.mirror), stats: l.client.stats,
  statuses: l.statuses, state: l.client.state, transport: l.client.transport, refreshed: l.refreshed,
  position: l.client.positionText }); }"""


def read(page: Page, name: str) -> dict[str, Any]:
    return json.loads(page.evaluate(READ, name))  # type: ignore[no-any-return]


def post(base: str, batch: list[dict[str, Any]], settings: Settings) -> None:
    r = httpx.post(base + "/events", json={"events": batch}, headers={"Authorization": f"Bearer {settings.events_api_key}"},
                   timeout=10)
    assert r.status_code == 200, r.text


def rest(base: str, tok: str) -> tuple[str, dict[str, Any]]:
    """GET /sessions/active: (the position it is current at, {id: session})."""
    r = httpx.get(base + "/sessions/active", headers={"Authorization": f"Bearer {tok}"}, timeout=10)
    return r.headers["etag"].strip('"'), {s["id"]: s for s in r.json()["sessions"]}


def caught_up(page: Page, name: str, position: str, sessions: dict[str, Any]) -> bool:
    got = read(page, name)
    return got["state"] == "live" and got["position"] == position and got["sessions"] == sessions


def until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def resume_counts(page: Page, names: Any) -> dict[str, int]:
    return {name: read(page, name)["stats"]["resumes"] for name in names}


def until_resumed(page: Page, before: dict[str, int], names: Any, what: str) -> None:
    until(lambda: all(read(page, name)["stats"]["resumes"] > before[name] and read(page, name)["state"] == "live"
                      for name in names), 30, f"every client to resume after {what}")


@pytest.fixture
def servers(clean_redis: str) -> Iterator[dict[str, Any]]:
    """`a` on a fixed port (the browser's), `b` on the same Redis (writes while `a` is down)."""
    port = free_port()
    procs = {"a": service_on_port(clean_redis, port, FAST), "b": ServiceProcess(clean_redis, FAST)}
    yield {"procs": procs, "port": port, "redis": clean_redis}
    for proc in procs.values():
        proc.stop("kill")


def stop_a(servers: dict[str, Any], how: str) -> None:
    servers["procs"]["a"].stop(how)


def viewers(settings: Settings) -> dict[str, str]:
    return {
        "manager": token(settings, sub="m", account=ACCOUNT, endpoint=None, roles=("User", "Manager")),
        "e1": token(settings, sub="u1", account=ACCOUNT, endpoint="E1"),
        "e2": token(settings, sub="u2", account=ACCOUNT, endpoint="E2"),
    }


def test_resumes_without_a_reset_across_kills_drains_and_drops(page: Page, servers: dict[str, Any],
                                                               settings: Settings) -> None:
    a, b = servers["procs"]["a"], servers["procs"]["b"]
    page.goto(a.url + "/")  # the page of the service's origin (signed out: it leaves the socket to us)
    tokens = viewers(settings)
    transports = {"manager": ["websocket"], "e1": ["sse"], "e2": ["poll"]}
    clients = {name: {"token": tok, "transports": transports[name]} for name, tok in tokens.items()}
    assert page.evaluate(START, {"base": a.url, "clients": clients}) == [None, None, None]
    stream = events(history(random.Random(2024), 70, SERVER_IDS))
    size = len(stream) // 10 + 1
    chunks = [stream[i:i + size] for i in range(0, len(stream), size)]
    # Each disruption is waited out (every client that should notice it resumes) before the
    # next one, so two disruptions never coalesce into one resume and each is counted.
    before: dict[str, int] = {}
    for n, chunk in enumerate(chunks):
        target = a.url
        if n in (3, 7, 8):
            before = resume_counts(page, tokens)
        if n == 3:  # the server dies: sockets cut with no goodbye
            stop_a(servers, "kill")
        if n in (3, 4, 8):
            target = b.url  # while the browser's server is down
        if n == 8:  # a graceful stop: "reconnect elsewhere", then close
            stop_a(servers, "term")
        if n == 7:  # the page drops its own connections (e.g. the network changed)
            page.evaluate("() => Object.values(window.live).forEach((l) => l.client.reconnect())")
            until_resumed(page, before, tokens, "its own reconnect")
        post(target, chunk, settings)
        if n in (4, 8):
            a = servers["procs"]["a"] = service_on_port(servers["redis"], servers["port"], FAST)
        if n == 4:
            until_resumed(page, before, tokens, "the kill")
        if n == 8:  # a long-poller between two requests may not notice a graceful stop at all
            until_resumed(page, before, [name for name in tokens if transports[name][0] != "poll"], "the drain")
        time.sleep(0.3)
    for name, tok in tokens.items():
        position, expected = rest(b.url, tok)
        until(functools.partial(caught_up, page, name, position, expected), 30, f"{name} to catch up")
        got = read(page, name)
        assert got["mirror"] == got["sessions"], name  # the events alone rebuild the map
        assert got["stats"]["resets"] == 0, (name, got["statuses"])
        # One resume per disruption: the kill, its own reconnect, and the drain (which a
        # long-poller between two requests may not notice).
        allowed = {2, 3} if transports[name][0] == "poll" else {3}
        assert got["stats"]["resumes"] in allowed, (name, json.dumps(got["statuses"]))
        assert got["transport"] == transports[name][0] and got["state"] == "live"
        assert any(s["state"] == "reconnecting" for s in got["statuses"])
        assert all(s["how"] != "reset" for s in got["statuses"])
    assert read(page, "manager")["stats"]["replayed"] > 0  # changes made while it was away were replayed


def test_token_is_refreshed_before_it_expires_on_every_transport(page: Page, servers: dict[str, Any],
                                                                 settings: Settings) -> None:
    a = servers["procs"]["a"]
    page.goto(a.url + "/")
    short = token(settings, sub="m", account=ACCOUNT, endpoint=None, roles=("User", "Manager"), ttl=4)
    fresh = token(settings, sub="m", account=ACCOUNT, endpoint=None, roles=("User", "Manager"), ttl=600)
    clients = {t: {"token": short, "next": fresh, "transports": [t]} for t in ("websocket", "sse", "poll")}
    assert page.evaluate(START, {"base": a.url, "clients": clients}) == [None, None, None]
    time.sleep(6)  # past the first token's expiry and the server's grace
    post(a.url, events(history(random.Random(1), 3, SERVER_IDS), prefix="refresh"), settings)
    position, expected = rest(a.url, fresh)
    for name in clients:
        until(functools.partial(caught_up, page, name, position, expected), 10, f"{name} to see the change")
        got = read(page, name)
        assert got["refreshed"] == 1 and got["state"] == "live", got
        assert not any(s["state"] in ("reconnecting", "closed") for s in got["statuses"]), (name, got["statuses"])


def test_a_refused_token_closes_for_good(page: Page, servers: dict[str, Any], settings: Settings) -> None:
    a = servers["procs"]["a"]
    page.goto(a.url + "/")
    expired = token(settings, sub="m", account=ACCOUNT, endpoint=None, ttl=-60)
    clients = {t: {"token": t_ok, "transports": [t]} for t, t_ok in
               (("websocket", "not-a-jwt"), ("sse", "not-a-jwt"), ("poll", expired))}
    errors = page.evaluate(START, {"base": a.url, "clients": clients})
    assert all(e and "refused" in e for e in errors), errors
    codes = {name: read(page, name)["statuses"][-1] for name in clients}
    assert codes["websocket"]["code"] == 3501 and codes["sse"]["code"] == 401, codes
    assert all(s["state"] == "closed" for s in codes.values())
