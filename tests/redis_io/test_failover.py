"""Failover is honest (issue 9): a master killed mid-stream, on a Redis Cluster
and behind three real Sentinels, with two service processes and live clients
that resume on either. Every client either continues exactly or is reset; the
same position never carries two different states (a replica promoted without
the last writes must not reuse their cursors); every client ends equal to
REST; with REDIS_WAIT_REPLICAS=1, no acknowledged event is lost."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from app.storage import keys
from app.config import Settings
from tests.support.failover import Drill
from tests.support.processes import (RedisClusterServers, RedisNode, RedisSentinels, ServiceProcess, replica_of,
                                     wait_until)

ACCOUNTS = ["F1", "F2", "F3"]
FAST = {"LIVE_PING_INTERVAL": "1", "LIVE_POSITION_CHECK_SECONDS": "1", "REDIS_RETRY_SECONDS": "1"}


class Topology:
    """A Redis deployment with replicas: where an account's master is, how its
    replica takes over, and when the deployment has settled after a failover."""

    kind: str
    env: dict[str, str]
    nodes: list[RedisNode]

    def master_for(self, account: str) -> RedisNode:
        raise NotImplementedError

    def promote(self, replica: RedisNode) -> None:
        raise NotImplementedError

    def settled(self) -> bool:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class ClusterTopology(Topology):
    kind = "cluster"

    def __init__(self) -> None:
        self.servers = RedisClusterServers(masters=3, replicas=1)
        self.env, self.nodes = {"REDIS_URL": self.servers.url}, self.servers.nodes

    def master_for(self, account: str) -> RedisNode:
        return self.servers.master_of(keys.seq(account))

    def promote(self, replica: RedisNode) -> None:
        """The replica takes over at once, without its (dead) master's agreement."""
        c = replica.client()
        try:
            c.execute_command("CLUSTER", "FAILOVER", "TAKEOVER")
        finally:
            c.close()

    def settled(self) -> bool:
        return self.servers.healthy()

    def stop(self) -> None:
        self.servers.stop()


class SentinelTopology(Topology):
    kind = "sentinel"

    def __init__(self) -> None:
        self.servers = RedisSentinels()
        self.env = {"REDIS_SENTINELS": self.servers.addresses, "REDIS_SENTINEL_MASTER": "mymaster"}
        self.nodes = self.servers.nodes

    def master_for(self, account: str) -> RedisNode:
        return self.servers.primary()

    def promote(self, replica: RedisNode) -> None:
        """Sentinel promotes it by itself once it sees the primary down."""

    def settled(self) -> bool:
        primary = self.servers.primary()
        if primary.proc.poll() is not None:
            return False
        c = primary.client()
        try:
            return bool(c.execute_command("ROLE")[0] == b"master")
        finally:
            c.close()

    def stop(self) -> None:
        self.servers.stop()


@pytest.fixture(params=["cluster", "sentinel"])
def topology(request: pytest.FixtureRequest) -> Iterator[Topology]:
    topo: Topology = ClusterTopology() if request.param == "cluster" else SentinelTopology()
    try:
        yield topo
    finally:
        topo.stop()


@pytest.fixture
async def start_drill(topology: Topology, settings: Settings) -> AsyncIterator[Callable[..., Awaitable[Drill]]]:
    """Two service processes on the topology (extra settings as keyword arguments)
    and the drill running on them, every account with 10 acknowledged events."""
    procs: list[ServiceProcess] = []
    drills: list[Drill] = []

    async def start(**env: str) -> Drill:
        for _ in range(2):
            procs.append(ServiceProcess("", env={**topology.env, **FAST, **env}))
        drill = Drill(procs, ACCOUNTS, settings)
        drills.append(drill)
        drill.start()
        for account in ACCOUNTS:
            await drill.acked_at_least(account, 10)
        return drill

    try:
        yield start
    finally:
        for d in drills:
            await d.abort()
        for p in procs:
            p.stop()


async def failover(topology: Topology, replica: RedisNode) -> None:
    topology.promote(replica)
    await asyncio.to_thread(wait_until, topology.settled, 30, "the failover")


async def test_a_promoted_replica_without_the_last_writes_never_reuses_their_positions(
        topology: Topology, start_drill: Callable[..., Awaitable[Drill]]) -> None:
    """The replica is frozen (SIGSTOP) and cut off while the master acknowledges more events,
    then the master is killed and the replica promoted: those events are lost
    (asynchronous replication, REDIS_WAIT_REPLICAS=0). Clients that saw them
    must be reset into the new history, never silently diverge."""
    drill = await start_drill()
    master = topology.master_for("F1")
    replica = replica_of(topology.nodes, master)
    os.kill(replica.proc.pid, signal.SIGSTOP)
    c = master.client()
    try:  # cut the link: what the master acknowledges from now on never leaves it
        c.execute_command("CLIENT", "KILL", "TYPE", "replica")
    finally:
        c.close()
    try:
        await drill.acked_at_least("F1", len(drill.acked["F1"]) + 10)  # acknowledged by the master alone
        await asyncio.sleep(0.5)  # ... and relayed to the clients
        master.kill()
    finally:
        os.kill(replica.proc.pid, signal.SIGCONT)
    await failover(topology, replica)
    await drill.acked_at_least("F1", len(drill.acked["F1"]) + 10)  # the new master takes writes
    missing = await drill.finish()
    print(f"\n{topology.kind}, replica frozen then promoted: {drill.figures(missing)}")
    assert missing["F1"], "the drill did not cut the history (no acknowledged event was lost)"
    f1 = [drill.states[("F1", str(i))] for i in range(drill.watchers_per_account)]
    assert all(state.resets >= 1 for state in f1)  # they held lost writes: reset, not patched over


async def test_with_wait_replicas_no_acknowledged_event_is_lost(
        topology: Topology, start_drill: Callable[..., Awaitable[Drill]]) -> None:
    drill = await start_drill(REDIS_WAIT_REPLICAS="1", REDIS_WAIT_TIMEOUT_MS="500")
    master = topology.master_for("F1")
    replica = replica_of(topology.nodes, master)
    master.kill()
    await failover(topology, replica)
    # Writes wait for a replica the promoted master does not have yet (503s,
    # retried) until the old master comes back and is made its replica.
    await asyncio.to_thread(master.restart)
    await drill.acked_at_least("F1", len(drill.acked["F1"]) + 5, timeout=60)
    missing = await drill.finish()
    print(f"\n{topology.kind}, REDIS_WAIT_REPLICAS=1, master killed: {drill.figures(missing)}")
    assert missing == {account: [] for account in ACCOUNTS}
