"""The service on a real Redis Cluster (issue 9): /health follows the slots,
a slot moved under live traffic loses nothing, and every command of every
flow goes to the node that owns its key (no redirection, no CROSSSLOT)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import msgspec
import pytest

from app.storage import keys
from app.config import Settings
from app.composition import create_app
from app.redis_io import Cluster
from tests.flows import FLOWS
from tests.flows.http import deliver
from tests.support.failover import Drill
from tests.support.factories import event, token
from tests.support.processes import RedisClusterServers, ServiceProcess, migrate_slot, wait_until

FAST = {"LIVE_PING_INTERVAL": "1", "LIVE_POSITION_CHECK_SECONDS": "1"}


@pytest.fixture
def cluster() -> Iterator[RedisClusterServers]:
    servers = RedisClusterServers(masters=3)
    try:
        yield servers
    finally:
        servers.stop()


async def test_a_slot_moved_between_masters_under_live_traffic_loses_nothing(
        cluster: RedisClusterServers, settings: Settings) -> None:
    procs = [ServiceProcess(cluster.url, env=FAST) for _ in range(2)]
    drill = Drill(procs, ["M1", "M2"], settings)
    try:
        drill.start()
        await drill.acked_at_least("M1", 10)
        source, target = await asyncio.to_thread(migrate_slot, cluster, keys.seq("M1"))
        assert cluster.master_of(keys.seq("M1")).port == target != source
        await drill.acked_at_least("M1", len(drill.acked["M1"]) + 10)
        missing = await drill.finish()
        print(f"\nslot of M1 moved {source} -> {target} under traffic: {drill.figures(missing)}")
        assert missing == {"M1": [], "M2": []}
    finally:
        await drill.abort()
        for p in procs:
            p.stop()


async def test_health_is_503_while_a_slot_has_no_master_then_200(
        cluster: RedisClusterServers, settings: Settings) -> None:
    proc = ServiceProcess(cluster.url)
    try:
        async with httpx.AsyncClient(base_url=proc.url, timeout=10) as http:
            r = await http.get("/health")
            assert r.status_code == 200
            state = r.json()
            assert (state["topology"], state["masters"], state["slotsServed"]) == ("cluster", 3, 16384)
            victim = cluster.master_of(keys.seq("H1"))
            victim.kill()  # no replica: its slots stay unserved
            r = await http.get("/health")
            assert r.status_code == 503 and r.json()["slotsServed"] < 16384
            r = await http.post("/events", headers={"Authorization": "Bearer test-events-key"},
                                json={"events": [event("session.upsert", "H1", "S1", session={"endpointId": "E1"})]})
            assert r.status_code == 503 and r.json()["responseStatus"]["errorCode"]  # clean, nothing half-applied
            await asyncio.to_thread(victim.restart)  # back with its slots (nodes.conf kept)
            await asyncio.to_thread(wait_until, cluster.healthy, 30, "the cluster")

            async def healthy() -> bool:
                return (await http.get("/health")).status_code == 200

            for _ in range(100):
                if await healthy():
                    break
                await asyncio.sleep(0.1)
            # From the first 200 on, nothing is answered 503: stale connections are resent, not failed.
            for n in range(20):
                r = await http.post("/events", headers={"Authorization": "Bearer test-events-key"}, json={
                    "events": [event("session.upsert", "H1", f"S{n}", session={"endpointId": "E1"})]})
                assert r.status_code == 200, r.text
    finally:
        proc.stop()


async def test_every_command_of_every_flow_goes_to_the_node_that_owns_its_key(
        cluster: RedisClusterServers, settings: Settings) -> None:
    """Every flow delivered whole (reversed: dead letters first, then their
    replay), events, reads in every format: a stable cluster never answers
    MOVED, ASK or CROSSSLOT to a command routed right."""
    app = create_app(msgspec.structs.replace(settings, redis_url=cluster.url))
    redis = app.state.services.store.redis
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            for flow in FLOWS.values():
                for step in reversed(flow.steps):
                    assert (await deliver(client, step)).status_code == 204
            r = await client.post("/events", headers={"Authorization": "Bearer test-events-key"}, json={"events": [
                event("session.upsert", f"R{n}", f"RS{n}", session={"endpointId": "E1"}) for n in range(20)]})
            assert r.status_code == 200
            for n in range(20):
                for fmt in ("json", "xml", "jsv", "csv"):
                    tok = token(settings, account=f"R{n}", roles=("User", "Manager"))
                    r = await client.get(f"/sessions/active?format={fmt}", headers={"Authorization": f"Bearer {tok}"})
                    assert r.status_code == 200
        impl = await redis.ready()
        assert isinstance(impl, Cluster) and impl.redirects == 0
        assert len(impl.masters()) == 3 and sum(w.batches for w in impl.writers) > 100
    finally:
        await redis.aclose()


async def test_many_accounts_on_each_node_all_get_their_changes(
        cluster: RedisClusterServers, settings: Settings) -> None:
    """Regression: one SSUBSCRIBE named channels of several slots (CROSSSLOT) once
    a node served more than one subscribed account, and the broker looped."""
    from tests.support.live import LiveClient, post_events

    proc = ServiceProcess(cluster.url)
    accounts = [f"N{n}" for n in range(24)]  # several per master
    clients = []
    try:
        async def watch(account: str) -> LiveClient:
            c = await LiveClient.connect(proc.url, token(settings, account=account, roles=("User", "Manager")))
            clients.append(c)
            await c.next("snapshot")
            return c

        ordered = await asyncio.gather(*(watch(a) for a in accounts))  # subscribed at once
        for node in cluster.masters():  # and resubscribed at once, every channel of a node together
            r = node.client()
            try:
                r.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            finally:
                r.close()
        await asyncio.sleep(1)  # let the broker notice and resubscribe (a gap it heals either way)
        cursors = await post_events(proc.url, *(
            event("session.upsert", a, f"{a}-S", session={"endpointId": "E1"}) for a in accounts))
        for c, cursor in zip(ordered, cursors):
            assert (await c.next("patch", timeout=10))["cursor"] == cursor
        assert "hash to the same slot" not in proc.output()
    finally:
        for c in clients:
            await c.close()
        proc.stop()


async def test_batches_are_coalesced_per_node_and_redirects_run_each_command_once(
        cluster: RedisClusterServers) -> None:
    """Every batch of one loop turn goes out in one write per node; while a slot
    is migrated under load, MOVED / ASK / TRYAGAIN are followed and each command
    (a non-idempotent INCR here) runs exactly once."""
    redis = Cluster(cluster.url)
    try:
        await redis.ready()
        accounts = [f"C{n}" for n in range(60)]
        before = sum(w.writes for w in redis.writers)
        replies = await asyncio.gather(*(redis.run([("INCR", keys.seq(a))]) for a in accounts))
        assert replies == [[1]] * len(accounts)
        assert sum(w.writes for w in redis.writers) - before == len(redis.masters()) == 3  # not 60

        done = 0
        stop = asyncio.Event()

        async def load() -> None:
            nonlocal done
            while not stop.is_set():
                [n, both] = await redis.run([("INCR", keys.seq("MIG")), ("MGET", keys.seq("MIG"), keys.epoch("MIG"))])
                done += 1
                assert int(n) == done and int(both[0]) == done  # each INCR once, in order; the slot's keys together
                await asyncio.sleep(0)

        await redis.run([("SET", keys.epoch("MIG"), "e1")])
        task = asyncio.create_task(load())
        await asyncio.to_thread(migrate_slot, cluster, keys.seq("MIG"), 0.05)
        stop.set()
        await task
        assert redis.redirects > 0 and done > 0
        [value] = await redis.run([("GET", keys.seq("MIG"))])
        assert int(value) == done
    finally:
        await redis.aclose()


async def test_a_live_subscription_follows_its_slot_to_the_new_master(
        cluster: RedisClusterServers, settings: Settings) -> None:
    """When a slot moves the old master ends the shard subscription (SUNSUBSCRIBE);
    the broker must subscribe again where the channel now lives. The feed's
    periodic position check is switched off here, so nothing else could heal it."""
    from tests.support.live import LiveClient, post_events

    proc = ServiceProcess(cluster.url, env={"LIVE_POSITION_CHECK_SECONDS": "3600"})
    try:
        client = await LiveClient.connect(proc.url, token(settings, account="SM1", roles=("User", "Manager")))
        await client.next("snapshot")
        [first] = await post_events(proc.url, event("session.upsert", "SM1", "S0", session={"endpointId": "E1"}))
        assert (await client.next("patch", timeout=10))["cursor"] == first
        await asyncio.to_thread(migrate_slot, cluster, keys.live_channel("SM1"))
        for n in range(1, 4):
            [cursor] = await post_events(proc.url, event("session.upsert", "SM1", f"S{n}", session={"endpointId": "E1"}))
            got = await client.next("patch", "snapshot", timeout=10)  # a reset is allowed: new node, new epoch
            assert got.get("cursor") == cursor
        await client.close()
    finally:
        proc.stop()
