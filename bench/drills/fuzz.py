"""Fuzz every HTTP and WebSocket entry point (hypothesis): no response is a 5xx or
carries a traceback, and no refused request (4xx) changes anything in Redis."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any
from urllib.parse import urlencode

import httpx
import redis
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.twilio.signature import compute_signature
from bench.drills.clients import manager_token, show, upsert
from bench.drills.processes import EVENTS_KEY, Redis, Service

TWILIO_TOKEN = "test-twilio-auth-token-0123456789"  # config/test.toml
PUBLIC_URL = "http://testserver"

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20)
_keys = st.sampled_from(["type", "eventId", "accountId", "sessionId", "occurredAt", "session", "member",
                         "message", "date", "outcome", "callState", "endpointId", "ended", "id"])
_event = st.dictionaries(_keys, _json | st.sampled_from(
    ["session.upsert", "session.end", "session.log", "session.member", "S1\n", "2024-05-01T10:00:00Z",
     "0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-14:00", "D1", "x" * 200]), max_size=8)
_body = st.one_of(
    st.builds(lambda evs: json.dumps({"events": evs}).encode(), st.lists(_event, max_size=3)),
    st.binary(max_size=200),
    st.integers(1, 3000).map(lambda n: b'{"events":' + b"[" * n + b"]" * n + b"}"),
)
_form = st.lists(st.tuples(st.sampled_from(["CallSid", "AccountSid", "CallStatus", "SequenceNumber", "Timestamp",
                                            "StatusCallbackEvent", "ConferenceSid", "Direction", "From", "x"]),
                           st.text(max_size=40)), max_size=8)
_query = st.lists(st.tuples(st.sampled_from(["sessionId", "accountId", "endpointId", "role", "since", "wait",
                                             "format", "displayName"]), st.text(max_size=30)), max_size=4)
_header_value = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)


class Checker:
    def __init__(self, base: str, redis_url: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=10)
        self.redis = redis.Redis.from_url(redis_url)
        self.counts = {"requests": 0, "refused_4xx": 0, "server_errors": 0, "tracebacks": 0, "changed_redis": 0}

    def close(self) -> None:
        self.http.close()
        self.redis.close()

    def digest(self) -> str:
        """Of the session data in Redis. Presence keys (`…:presence:*`) are left out: they
        record connections, and a socket that authenticated and then sent a bad message was
        a connection for that long (it joined and left: the account's presence version moved)."""
        h = hashlib.sha256()
        for key in sorted(self.redis.scan_iter(count=1000)):
            if b":presence:" in key:
                continue
            h.update(key + b"\0" + (self.redis.dump(key) or b""))
        return h.hexdigest()

    def check(self, request: httpx.Request) -> None:
        before = self.digest()
        try:
            r = self.http.send(request)
        except httpx.LocalProtocolError:
            return  # hypothesis made a request no HTTP client can send (e.g. a header value with a leading space)
        except httpx.HTTPError:
            self.counts["server_errors"] += 1  # the server dropped or never answered it
            return
        self.counts["requests"] += 1
        self.counts["server_errors"] += r.status_code >= 500
        self.counts["tracebacks"] += b"Traceback" in r.content or b'File "' in r.content
        if 400 <= r.status_code < 500:
            self.counts["refused_4xx"] += 1
            self.counts["changed_redis"] += self.digest() != before


def _http_fuzz(c: Checker, examples: int) -> None:
    common = settings(max_examples=examples, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
    tok = manager_token()

    @common
    @given(_body, st.sampled_from(["application/json", "text/plain", None]), st.booleans())
    def events(body: bytes, content_type: str | None, keyed: bool) -> None:
        headers = {"Authorization": f"Bearer {EVENTS_KEY}"} if keyed else {"Cookie": f"ss-tok={EVENTS_KEY}"}
        if content_type:
            headers["Content-Type"] = content_type
        c.check(c.http.build_request("POST", "/events", content=body, headers=headers))

    @common
    @given(st.sampled_from(["status", "conference"]), _query, _form, st.booleans())
    def twilio(kind: str, query: list[tuple[str, str]], form: list[tuple[str, str]], signed: bool) -> None:
        path = f"/twilio/{kind}" + (f"?{urlencode(query)}" if query else "")
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if signed:
            headers["X-Twilio-Signature"] = compute_signature(TWILIO_TOKEN, PUBLIC_URL + path, form)
        c.check(c.http.build_request("POST", path, content=urlencode(form).encode(), headers=headers))

    @common
    @given(st.sampled_from(["/sessions/active", "/sessions/active.json", "/json/reply/GetActiveSessions",
                            "/sessions/changes", "/sessions/live", "/console/config", "/console/dev-token"]),
           _query, _header_value, _header_value, st.booleans())
    def reads(path: str, query: list[tuple[str, str]], accept: str, etag: str, auth: bool) -> None:
        query = [(k, v) for k, v in query if k != "wait"] + [("wait", "0")]
        headers = {"Accept": accept or "*/*", "If-None-Match": etag, "Origin": "https://evil.example"}
        headers |= {"Authorization": f"Bearer {tok}"} if auth else {"Cookie": f"ss-tok={tok}"}
        if path == "/sessions/live" and "event-stream" in accept:
            return  # a valid SSE request streams until closed: not a refusal to check here
        method = "POST" if path == "/console/dev-token" else "GET"
        c.check(c.http.build_request(method, path, params=query, headers=headers))

    events()
    twilio()
    reads()


async def _ws_fuzz(base: str, c: Checker, messages: list[str | bytes]) -> dict[str, int]:
    out = {"ws_messages": 0, "ws_server_errors": 0}
    url = base.replace("http", "ws", 1) + "/sessions/live"
    for i, message in enumerate(messages):
        before = c.digest()
        headers = {"Authorization": f"Bearer {manager_token()}"} if i % 2 else {}
        try:
            async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
                await ws.send(message)
                async for _ in ws:
                    pass
        except websockets.ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else 1006
            out["ws_server_errors"] += code in (1011, 3011)
        except (OSError, websockets.InvalidHandshake):
            out["ws_server_errors"] += 1
        out["ws_messages"] += 1
        c.counts["changed_redis"] += c.digest() != before
    return out


def _ws_messages(count: int) -> list[str | bytes]:
    base: list[str | bytes] = [b'{"type":"ping"}', "nope", '{"type":"auth","token":"x"}',
                               '{"x":' + "[" * 5000 + "]" * 5000 + ',"type":"ping"}', '{"type":"auth"}',
                               '{"type":"auth","token":"t","since":"' + "9" * 40 + '"}']

    @settings(max_examples=max(0, count - len(base)), deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(_json)
    def collect(value: Any) -> None:
        base.append(json.dumps({"type": "auth", "token": value} if isinstance(value, str) else value))

    collect()
    return base


async def fuzz(quick: bool) -> dict[str, Any]:
    examples = 60 if quick else 600
    store = Redis(aof=False)
    service = Service(store.url, env={"LIVE_AUTH_TIMEOUT": "0.5"})
    try:
        seed = httpx.post(service.url + "/events", json={"events": [upsert("S0", 0)]},
                          headers={"Authorization": f"Bearer {EVENTS_KEY}"})
        seed.raise_for_status()
        c = Checker(service.url, store.url)
        await asyncio.to_thread(_http_fuzz, c, examples)
        ws = await _ws_fuzz(service.url, c, _ws_messages(examples // 3))
        c.close()
        log = service.output()
        return show("fuzz", {**c.counts, **ws, "tracebacks_logged": log.count("Traceback")})
    finally:
        service.stop()
        store.stop()
