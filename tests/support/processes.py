"""Real processes for tests: the servers (bench/servers.py, shared with the benchmarks),
plus what only tests need: Sentinels, the clusters this run started, and cluster surgery."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import redis

from bench.servers import (
    ROOT,
    RedisClusterServers,
    RedisNode,
    RedisServer,
    ServiceProcess,
    free_cluster_port,
    free_port,
    wait_until,
)

__all__ = [
    "CLUSTERS", "ROOT", "RedisClusterServers", "RedisNode", "RedisSentinels", "RedisServer", "ServiceProcess",
    "channel_subscribers", "free_cluster_port", "free_port", "migrate_slot", "replica_of", "service_pair", "wait_until",
]


class RedisSentinels:
    """A primary with one replica, watched by three real Sentinels (quorum 2),
    with short timeouts so a failover completes within seconds."""

    def __init__(self, name: str = "mymaster") -> None:
        self.name = name
        taken: set[int] = set()

        def port() -> int:
            p = free_cluster_port(taken)
            taken.add(p)
            return p

        self.nodes: list[RedisNode] = []
        try:
            primary = RedisNode(port(), "--save", "", "--appendonly", "no")
            self.nodes.append(primary)
            self.nodes.append(RedisNode(port(), "--save", "", "--appendonly", "no",
                                        "--replicaof", "127.0.0.1", str(primary.port)))
            self.sentinels = [
                RedisNode(p, "--sentinel", conf=(
                    f"sentinel monitor {name} 127.0.0.1 {primary.port} 2\n"
                    f"sentinel down-after-milliseconds {name} 1000\n"
                    f"sentinel failover-timeout {name} 5000\n"
                    f"sentinel parallel-syncs {name} 1\n"))
                for p in (port(), port(), port())]
            wait_until(lambda: self._replica_known(), 20, "Sentinel to see the replica")
        except BaseException:
            self.stop()
            raise
        self.addresses = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def _replica_known(self) -> bool:
        c = self.sentinels[0].client()
        try:
            return bool(c.execute_command("SENTINEL", "REPLICAS", self.name))
        finally:
            c.close()

    def primary(self) -> RedisNode:
        c = self.sentinels[0].client()
        try:
            host, port = c.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.name)
        finally:
            c.close()
        return next(n for n in self.nodes if n.port == int(port))

    def stop(self) -> None:
        for n in [*self.nodes, *getattr(self, "sentinels", [])]:
            n.stop()


CLUSTERS: dict[str, RedisClusterServers] = {}
"""The clusters the test run started, by URL (see tests/conftest.py)."""


@contextmanager
def service_pair(redis_url: str, env: Mapping[str, str]) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    """Two service processes on one Redis, both stopped afterwards (also when the second fails to start)."""
    a = ServiceProcess(redis_url, env=dict(env))
    try:
        b = ServiceProcess(redis_url, env=dict(env))
    except BaseException:
        a.stop()
        raise
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


def channel_subscribers(url: str, channel: str) -> int:
    """How many connections subscribe `channel`: PUBSUB NUMSUB on one node,
    PUBSUB SHARDNUMSUB on the master of its slot in a cluster."""
    cluster = CLUSTERS.get(url)
    if cluster is None:
        r = redis.Redis.from_url(url)
        try:
            return int(r.pubsub_numsub(channel)[0][1])
        finally:
            r.close()
    c = cluster.master_of(channel).client()
    try:
        return int(c.execute_command("PUBSUB", "SHARDNUMSUB", channel)[1])
    finally:
        c.close()


def replica_of(nodes: list[RedisNode], master: RedisNode) -> RedisNode:
    """The live node replicating `master` (ROLE says so)."""
    for n in nodes:
        if n is master or n.proc.poll() is not None:
            continue
        c = n.client()
        try:
            role = c.execute_command("ROLE")
        finally:
            c.close()
        if role[0] == b"slave" and int(role[2]) == master.port:
            return n
    raise RuntimeError(f"no replica of {master.port}")


def migrate_slot(cluster: RedisClusterServers, key: str, pause: float = 0.02) -> tuple[int, int]:
    """Move the slot of `key` to another master the way an operator does
    (SETSLOT IMPORTING/MIGRATING, MIGRATE key by key, SETSLOT NODE everywhere):
    (source port, destination port)."""
    source = cluster.master_of(key)
    target = next(n for n in cluster.masters() if n.port != source.port)
    src, dst = source.client(), target.client()
    try:
        slot = int(src.execute_command("CLUSTER", "KEYSLOT", key))
        src_id, dst_id = src.execute_command("CLUSTER", "MYID"), dst.execute_command("CLUSTER", "MYID")
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        while True:
            batch = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 2)
            if not batch:
                break
            src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *batch)
            time.sleep(pause)  # let traffic run against a half-moved slot
        for node in cluster.masters():
            c = node.client()
            try:
                c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
            finally:
                c.close()
    finally:
        src.close()
        dst.close()
    return source.port, target.port
