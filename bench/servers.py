"""The servers a benchmark, a drill or a test runs on loopback, as real processes: a
throwaway redis-server, a Redis Cluster (`redis-cli --cluster create`), single redis-server
nodes that can be killed and restarted, and the service itself (`python -m app serve`), each on
a free port. The tests use them too (tests/support/processes.py); bench/ imports nothing of
tests/."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], object], timeout: float, what: str) -> float:
    """Poll `check` until it is true; the seconds that took. RuntimeError after `timeout`."""
    start = time.monotonic()
    last: Exception | None = None
    while time.monotonic() - start < timeout:
        try:
            if check():
                return time.monotonic() - start
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            last = exc
        time.sleep(0.02)
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
    """`python -m app serve` as a real child process on a free port (or on `port`: a
    killed server restarted where its clients left it)."""

    def __init__(self, redis_url: str, env: dict[str, str] | None = None, *, port: int | None = None) -> None:
        self._start([sys.executable, "-m", "app", "serve", "--log-level", "warning"], "service",
                    {"APP_ENV": "test", "REDIS_URL": redis_url, **(env or {})}, port)

    def _start(self, command: list[str], name: str, env: dict[str, str], port: int | None = None) -> None:
        """Run `command` on `port`, else a free one (given as PORT/HOST and `{port}` in the
        command), and wait until it answers /health/live."""
        self.port = port or free_port()
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
