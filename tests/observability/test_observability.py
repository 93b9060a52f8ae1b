"""/metrics, X-Request-Id and log redaction, in-process on real Redis."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from app.composition import create_app
from app.observability.context import RequestContext, enter, leave
from app.observability.logs import JsonFormatter, Redactor, secrets_of
from tests.support.api import bearer, post_events
from tests.support.factories import event, token


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_count_outcomes_rejections_and_commits(client: httpx.AsyncClient) -> None:
    before = samples((await client.get("/metrics")).text)
    e = event("session.upsert", "A1", "S1", session={"endpointId": "E1"})
    assert (await post_events(client, e)).status_code == 200
    assert (await post_events(client, e)).status_code == 200  # same eventId: duplicate
    assert (await post_events(client, e, key="wrong-key")).status_code == 401
    assert (await client.post("/events", content=b"{", headers={**bearer("test-events-key"),
                                                                "content-type": "application/json"})).status_code == 400
    r = await client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=")
    after = samples(r.text)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert grew("callstate_ingest_total", route="/events", outcome="applied") == 1
    assert grew("callstate_ingest_total", route="/events", outcome="duplicate") == 1
    assert grew("callstate_ingest_rejected_total", route="/events", reason="Unauthorized") == 1
    assert sum(v for (n, labels), v in after.items() if n == "callstate_ingest_rejected_total") - sum(
        v for (n, labels), v in before.items() if n == "callstate_ingest_rejected_total") == 2
    assert grew("callstate_commit_seconds_count") == 2
    assert ("callstate_dead_letters", ()) in after
    assert ("callstate_live_connections", (("transport", "websocket"),)) in after
    assert any(n == "process_resident_memory_bytes" for n, _ in after)


async def test_metrics_token_protects_the_route(real_redis: aioredis.Redis, settings: Settings) -> None:
    app = create_app(msgspec.structs.replace(settings, metrics_token="scrape-secret-123"), redis=real_redis)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        refused = await c.get("/metrics")
        assert refused.status_code == 401 and refused.json()["responseStatus"]["errorCode"] == "Unauthorized"
        assert (await c.get("/metrics", headers=bearer("scrape-secret-12"))).status_code == 401
        assert (await c.get("/metrics", headers=bearer("scrape-secret-123"))).status_code == 200


@pytest.mark.parametrize(("sent", "kept"), [
    ("req-42.a:b_c", True), ("x" * 128, True), ("x" * 129, False), ("has space", False), ("<script>", False),
    ("", False), (None, False),
])
async def test_request_id_is_echoed_when_safe_else_generated(client: httpx.AsyncClient, sent: str | None,
                                                             kept: bool) -> None:
    headers = {} if sent is None else {"X-Request-Id": sent}
    echoed = (await client.get("/health/live", headers=headers)).headers["x-request-id"]
    if kept:
        assert echoed == sent
    else:
        assert echoed != sent and len(echoed) == 32 and int(echoed, 16) >= 0


def test_json_log_line_has_the_request_fields_and_no_secrets(settings: Settings) -> None:
    redact = Redactor(secrets_of(settings))
    formatter = JsonFormatter(redact)
    jwt = token(settings)
    ctx = RequestContext("rid-1", "/sessions/active", account="A1")
    reset = enter(ctx)
    try:
        record = logging.LogRecord("app.x", logging.WARNING, __file__, 1,
                                   "saw %s and Bearer %s and key %s", (jwt, "opaque-credential", "test-events-key"),
                                   None)
        record.status, record.duration_ms = 401, 1.5
        line: dict[str, Any] = json.loads(formatter.format(record))
    finally:
        leave(reset)
    assert {k: line[k] for k in ("level", "logger", "request_id", "route", "account", "status", "duration_ms")} == {
        "level": "WARNING", "logger": "app.x", "request_id": "rid-1", "route": "/sessions/active", "account": "A1",
        "status": 401, "duration_ms": 1.5}
    assert line["time"].endswith("Z")
    for secret in (jwt, "opaque-credential", "test-events-key"):
        assert secret not in line["message"]
