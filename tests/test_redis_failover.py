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
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from app import keys
from app.config import Settings
from tests.support.failover import Drill
from tests.support.processes import (RedisClusterServers, RedisNode, RedisSentinels, ServiceProcess, replica_of,
                                     wait_until)

ACCOUNTS = ["F1", "F2", "F3"]
FAST = {"LIVE_PING_INTERVAL": "1", "LIVE_POSITION_CHECK_SECONDS": "1", "REDIS_RETRY_SECONDS": "1"}


@dataclass
class Topology:
    kind: str
    env: dict[str, str]
    nodes: list[RedisNode]
    stop: object

    def master_for(self, account: str) -> RedisNode:
        raise NotImplementedError


class ClusterTopology(Topology):
    def __init__(self) -> None:
        self.servers = RedisClusterServers(masters=3, replicas=1)
        super().__init__("cluster", {"REDIS_URL": self.servers.url}, self.servers.nodes, self.servers.stop)

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


class SentinelTopology(Topology):
    def __init__(self) -> None:
        self.servers = RedisSentinels()
        super().__init__("sentinel", {"REDIS_SENTINELS": self.servers.addresses, "REDIS_SENTINEL_MASTER": "mymaster"},
                         self.servers.nodes, self.servers.stop)

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


@pytest.fixture(params=["cluster", "sentinel"])
def topology(request: pytest.FixtureRequest) -> Iterator[Topology]:
    topo: Topology = ClusterTopology() if request.param == "cluster" else SentinelTopology()
    try:
        yield topo
    finally:
        topo.servers.stop()  # type: ignore[attr-defined]


def services(topo: Topology, **env: str) -> list[ServiceProcess]:
    procs: list[ServiceProcess] = []
    try:
        for _ in range(2):
            procs.append(ServiceProcess("", env={**topo.env, **FAST, **env}))
    except BaseException:
        for p in procs:
            p.stop()
        raise
    return procs


@pytest.fixture
async def drill_of() -> AsyncIterator[list[Drill]]:
    made: list[Drill] = []
    yield made
    for d in made:
        await d.abort()


async def test_a_promoted_replica_without_the_last_writes_never_reuses_their_positions(
        topology: Topology, settings: Settings, drill_of: list[Drill]) -> None:
    """The replica is frozen (SIGSTOP) and cut off while the master acknowledges more events,
    then the master is killed and the replica promoted: those events are lost
    (asynchronous replication, REDIS_WAIT_REPLICAS=0). Clients that saw them
    must be reset into the new history, never silently diverge."""
    procs = services(topology)
    try:
        drill = Drill(procs, ACCOUNTS, settings)
        drill_of.append(drill)
        drill.start()
        for account in ACCOUNTS:
            await drill.acked_at_least(account, 10)
        master = topology.master_for("F1")
        replica = replica_of(topology.nodes, master)
        os.kill(replica.proc.pid, signal.SIGSTOP)
        c = master.client()
        try:  # cut the link: what the master acknowledges from now on never leaves it
            c.execute_command("CLIENT", "KILL", "TYPE", "replica")
        finally:
            c.close()
        try:
            before = len(drill.acked["F1"])
            await drill.acked_at_least("F1", before + 10)  # acknowledged by the master alone
            await asyncio.sleep(0.5)  # ... and relayed to the clients
            master.kill()
        finally:
            os.kill(replica.proc.pid, signal.SIGCONT)
        topology.promote(replica)  # type: ignore[attr-defined]
        await asyncio.to_thread(wait_until, topology.settled, 30, "the failover")  # type: ignore[attr-defined]
        after = len(drill.acked["F1"])
        await drill.acked_at_least("F1", after + 10)  # the new master takes writes
        missing = await drill.finish()
        print(f"\n{topology.kind}, replica frozen then promoted: {drill.figures(missing)}")
        assert missing["F1"], "the drill did not cut the history (no acknowledged event was lost)"
        f1 = [drill.states[("F1", str(i))] for i in range(drill.watchers_per_account)]
        assert all(state.resets >= 1 for state in f1)  # they held lost writes: reset, not patched over
    finally:
        for p in procs:
            p.stop()


async def test_with_wait_replicas_no_acknowledged_event_is_lost(
        topology: Topology, settings: Settings, drill_of: list[Drill]) -> None:
    procs = services(topology, REDIS_WAIT_REPLICAS="1", REDIS_WAIT_TIMEOUT_MS="500")
    try:
        drill = Drill(procs, ACCOUNTS, settings)
        drill_of.append(drill)
        drill.start()
        for account in ACCOUNTS:
            await drill.acked_at_least(account, 10)
        master = topology.master_for("F1")
        replica = replica_of(topology.nodes, master)
        master.kill()
        topology.promote(replica)  # type: ignore[attr-defined]
        await asyncio.to_thread(wait_until, topology.settled, 30, "the failover")  # type: ignore[attr-defined]
        # Writes wait for a replica the promoted master does not have yet (503s,
        # retried) until the old master comes back and is made its replica.
        await asyncio.to_thread(master.restart)
        after = len(drill.acked["F1"])
        await drill.acked_at_least("F1", after + 5, timeout=60)
        missing = await drill.finish()
        print(f"\n{topology.kind}, REDIS_WAIT_REPLICAS=1, master killed: {drill.figures(missing)}")
        assert missing == {account: [] for account in ACCOUNTS}
    finally:
        for p in procs:
            p.stop()
