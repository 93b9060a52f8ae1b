"""Real processes for tests: a throwaway redis-server and the service itself."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up in {timeout}s (last error: {last})")


class RedisServer:
    """A redis-server on a free loopback port, no persistence, killed on stop."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not on PATH: install it (apt-get install redis-server) "
                "or set REDIS_URL to a disposable Redis database"
            )
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="redis-test-")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"
        client = redis.Redis.from_url(self.url)
        wait_until(client.ping, 10, f"redis-server on port {self.port}")
        client.close()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class ServiceProcess:
    """`python -m app serve` as a real child process on a free port."""

    def __init__(self, redis_url: str, env: dict[str, str] | None = None) -> None:
        self._start([sys.executable, "-m", "app", "serve", "--log-level", "warning"], "service",
                    {"APP_ENV": "test", "REDIS_URL": redis_url, **(env or {})})

    def _start(self, command: list[str], name: str, env: dict[str, str]) -> None:
        """Run `command` on a free port (given as PORT/HOST and `{port}` in the
        command) and wait until it answers /health/live."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "PORT": str(self.port), "HOST": "127.0.0.1", **env}
        self.log = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False)  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(
            [part.replace("{port}", str(self.port)) for part in command],
            cwd=ROOT, env=full_env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        try:
            wait_until(lambda: httpx.get(self.url + "/health/live", timeout=1).status_code == 200,
                       20, f"{name} on port {self.port}")
        except RuntimeError:
            self.stop()
            raise RuntimeError(f"{name} failed to start:\n{self.output()}") from None

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self, sig: str = "term") -> None:
        self._signal(sig)
        self.log.close()

    def _signal(self, sig: str) -> None:
        if self.proc.poll() is None:
            self.proc.terminate() if sig == "term" else self.proc.kill()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def free_cluster_port(taken: set[int]) -> int:
    """A free loopback port whose cluster bus port (+10000) is free too (so < 55536)."""
    for _ in range(200):
        port = free_port()
        if port < 55536 and port not in taken and port + 10000 not in taken:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisNode:
    """One redis-server process on loopback (a cluster node, a replica, or a Sentinel)."""

    def __init__(self, port: int, *args: str, conf: str | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH: install it (apt-get install redis-server)")
        self.port = port
        self.dir = tempfile.mkdtemp(prefix=f"redis-{port}-")
        command = [binary]
        if conf is not None:
            path = Path(self.dir) / "node.conf"
            path.write_text(conf)
            command.append(str(path))
        command += ["--port", str(port), "--bind", "127.0.0.1", "--dir", self.dir, "--protected-mode", "no", *args]
        self.args = command
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_until(lambda: redis.Redis(port=port, socket_timeout=1).ping(), 10, f"redis on port {port}")

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2)

    def kill(self) -> None:
        """kill -9: no shutdown, no final save."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def restart(self) -> None:
        self.kill()
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_until(lambda: redis.Redis(port=self.port, socket_timeout=1).ping(), 10, f"redis on port {self.port}")

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisClusterServers:
    """A real Redis Cluster on loopback: `masters` masters, each with `replicas`
    replicas, created with `redis-cli --cluster create`. A short node timeout,
    so a killed master's replica is promoted within a few seconds."""

    def __init__(self, masters: int = 3, replicas: int = 0, node_timeout_ms: int = 1000) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not on PATH: install it (apt-get install redis-tools)")
        taken: set[int] = set()
        self.nodes: list[RedisNode] = []
        try:
            for _ in range(masters * (1 + replicas)):
                port = free_cluster_port(taken)
                taken |= {port, port + 10000}
                self.nodes.append(RedisNode(
                    port, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", str(node_timeout_ms), "--save", "", "--appendonly", "no",
                    "--cluster-replica-validity-factor", "0"))
            subprocess.run(
                [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
                 "--cluster-replicas", str(replicas), "--cluster-yes"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, timeout=60)
            wait_until(self.healthy, 30, "the Redis Cluster")
        except BaseException:
            self.stop()
            raise
        self.url = f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def node(self, port: int) -> RedisNode:
        return next(n for n in self.nodes if n.port == port)

    def alive(self) -> list[RedisNode]:
        return [n for n in self.nodes if n.proc.poll() is None]

    def healthy(self) -> bool:
        """Every live node says cluster_state:ok and agrees every slot is served."""
        for n in self.alive():
            c = n.client()
            try:
                info = c.execute_command("CLUSTER", "INFO").decode()
            finally:
                c.close()
            if "cluster_state:ok" not in info or "cluster_slots_ok:16384" not in info:
                return False
        return True

    def masters(self) -> list[RedisNode]:
        out = []
        for n in self.alive():
            c = n.client()
            try:
                role = c.execute_command("ROLE")[0]
            finally:
                c.close()
            if role == b"master":
                out.append(n)
        return out

    def master_of(self, key: str) -> RedisNode:
        c = self.alive()[0].client()
        try:
            slot = int(c.execute_command("CLUSTER", "KEYSLOT", key))
            for start, end, master, *_ in c.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return self.node(int(master[1]))
        finally:
            c.close()
        raise RuntimeError(f"no master serves {key!r}")

    def flush(self) -> None:
        for n in self.masters():
            c = n.client()
            try:
                c.flushall()
            finally:
                c.close()

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()


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
