"""After a Redis restart, once /health is 200 again, no request gets a 503:
a batch that fails on a pooled connection that died while idle is resent once
on a fresh one (issue 9). And an account's epoch changes across a restart that
may have lost writes (AOF replayed), so resumed clients are reset, never
patched onto a history that is gone."""

from __future__ import annotations

import asyncio

import httpx

from app.config import load_settings
from tests.support.factories import event, token
from tests.support.processes import RedisNode, ServiceProcess, free_cluster_port

KEY = {"Authorization": "Bearer test-events-key"}


async def burst(http: httpx.AsyncClient, prefix: str, n: int = 30) -> list[httpx.Response]:
    return await asyncio.gather(*(http.post("/events", headers=KEY, json={"events": [
        event("session.upsert", "R1", f"{prefix}{i}", session={"endpointId": "E1"})]}) for i in range(n)))


async def test_no_503_once_health_is_back_after_a_restart() -> None:
    node = RedisNode(free_cluster_port(set()), "--save", "", "--appendonly", "yes")
    proc = ServiceProcess(f"redis://127.0.0.1:{node.port}/0")
    try:
        async with httpx.AsyncClient(base_url=proc.url, timeout=10) as http:
            assert all(r.status_code == 200 for r in await burst(http, "a"))  # several pooled connections
            viewer = {"Authorization": "Bearer " + token(load_settings({"APP_ENV": "test"}), account="R1",
                                                         roles=("User", "Manager"))}
            epoch_before = (await http.get("/sessions/active", headers=viewer)).headers["etag"].split(":")[0]
            await asyncio.to_thread(node.restart)  # kill -9, then the same server again (AOF replayed)
            # Redis answers again (restart() waited for its PING): the service's kept
            # connections are all dead, yet neither /health nor any request fails on one.
            assert (await http.get("/health")).status_code == 200
            answers = await burst(http, "b")
            assert [r.status_code for r in answers] == [200] * len(answers), [r.text for r in answers[:3]]
            epoch_after = (await http.get("/sessions/active", headers=viewer)).headers["etag"].split(":")[0]
            assert epoch_after != epoch_before  # the AOF may have lacked the last second: a new history
    finally:
        proc.stop()
        node.stop()
