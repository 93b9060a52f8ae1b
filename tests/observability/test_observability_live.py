"""A real service process with LOG_FORMAT=json: every output line is one JSON object,
no credential ever appears in the output, and the latency metrics see live writes."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import websockets

from app.config import Settings
from tests.flows import a_inbound_to_agent as a
from tests.flows.http import signed
from tests.support.factories import event, token
from tests.support.live import LiveClient, post_events, ws_url
from tests.support.processes import ServiceProcess
from tests.observability.test_observability import samples

METRICS_TOKEN = "metrics-scrape-token-0123"
TWILIO_TOKEN = "test-twilio-auth-token-0123456789"


@pytest.fixture
def server(clean_redis: str) -> Iterator[ServiceProcess]:
    proc = ServiceProcess(clean_redis, env={"LOG_FORMAT": "json", "LOG_LEVEL": "debug",
                                            "METRICS_TOKEN": METRICS_TOKEN})
    yield proc
    proc.stop()


async def test_json_logs_carry_no_credentials_and_metrics_see_socket_writes(
        server: ServiceProcess, settings: Settings) -> None:
    good = token(settings, endpoint="E1")
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    client = await LiveClient.connect(server.url, good)
    try:
        await run_traffic(server, client, good, forged)
    finally:
        await client.close()
    server.stop()
    check_output(server, settings, good, forged)


async def run_traffic(server: ServiceProcess, client: LiveClient, good: str, forged: str) -> None:
    await client.next("snapshot")
    [cursor] = await post_events(server.url, event("session.upsert", "A1", "S1", session={"endpointId": "E1"}))
    assert (await client.next("patch"))["cursor"] == cursor

    step = a.FLOW.steps[0]
    request = signed(step, "http://testserver")
    signature = request["headers"]["X-Twilio-Signature"]
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        assert (await http.get("/sessions/active", headers={"Authorization": f"Bearer {good}",
                                                            "X-Request-Id": "trace-1"})).status_code == 200
        assert (await http.get("/sessions/active", headers={"Cookie": f"ss-tok={good}"})).status_code == 200
        assert (await http.get("/sessions/active", headers={"Authorization": f"Bearer {forged}"})).status_code == 401
        assert (await http.post("/events", json={"events": []},
                                headers={"Authorization": "Bearer not-the-events-key"})).status_code == 401
        tampered = {**request, "url": server.url + step.url_tail,
                    "headers": {**request["headers"], "X-Twilio-Signature": signature[::-1]}}
        assert (await http.post(**tampered)).status_code == 403
        assert (await http.post(**{**request, "url": server.url + step.url_tail})).status_code in (200, 204)
        async with websockets.connect(ws_url(server.url)) as ws:
            await ws.send(json.dumps({"type": "auth", "token": forged}))
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
        assert (await http.get("/metrics")).status_code == 401
        r = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert r.status_code == 200
    metrics = samples(r.text)
    assert metrics[("callstate_arrival_to_write_seconds_count", ())] >= 1
    assert metrics[("callstate_event_time_to_write_seconds_count", (("source", "events"),))] >= 1
    assert metrics[("callstate_live_connections", (("transport", "websocket"),))] == 1
    assert metrics[("callstate_live_starts_total", (("outcome", "snapshot"),))] == 1
    # The serving process's collector: the policy's start-up collections were timed, as full ones.
    assert metrics[("callstate_gc_pause_seconds_count", (("generation", "2"),))] >= 2
    assert metrics[("python_gc_collections_total", (("generation", "2"),))] >= 2
    assert metrics[("callstate_gc_frozen_objects", ())] > 10_000
    assert {labels for (name, labels) in metrics if name == "callstate_gc_reclaims_total"} == {
        (("cause", "ended"),), (("cause", "growth"),)}
    assert sum(v for (name, labels), v in metrics.items()
               if name == "callstate_ingest_rejected_total" and ("route", "/twilio/status") in labels) == 1


def check_output(server: ServiceProcess, settings: Settings, good: str, forged: str) -> None:
    step = a.FLOW.steps[0]
    signature = signed(step, "http://testserver")["headers"]["X-Twilio-Signature"]
    lines = [line for line in server.output().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    traced = [r for r in records if r.get("request_id") == "trace-1"]
    assert traced and traced[-1]["status"] == 200 and traced[-1]["account"] == "A1" and "duration_ms" in traced[-1]
    assert traced[-1]["route"] == "/sessions/active"
    output = server.output()
    for secret in (good, forged, good.split(".")[2], "not-the-events-key", "test-events-key", signature,
                   signature[::-1], TWILIO_TOKEN, METRICS_TOKEN, settings.jwt_secret):
        assert secret not in output, secret[:12]
