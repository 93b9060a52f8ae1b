"""The processes a drill runs: a redis-server that can be killed and restarted on the same
port and data (with or without AOF), and the service (`python -m app serve`)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parents[2]
JWT_SECRET = "drill-jwt-secret-0123456789abcdef"
EVENTS_KEY = "drill-events-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll `check` until true; the seconds it took. RuntimeError after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if check():
                return time.monotonic() - start
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{what} not within {timeout}s")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Redis:
    """redis-server on loopback. `aof`: appendonly with `appendfsync always` (an
    acknowledged write is on disk); otherwise no persistence at all."""

    def __init__(self, aof: bool) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH (apt-get install redis-server)")
        self.binary, self.aof = binary, aof
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="drill-redis-")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.aof else ["--appendonly", "no"]
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence,
             "--dir", self.dir, "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url)
        try:
            wait_for(lambda: bool(client.ping()), 10, f"redis-server on {self.port}")
        finally:
            client.close()

    def kill(self) -> None:
        """kill -9: no shutdown save, no last fsync."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class Service:
    """`python -m app serve` on a free port (APP_ENV=test keys replaced by the drill's)."""

    def __init__(self, redis_url: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(tempfile.mkstemp(prefix="drill-service-", suffix=".log")[1])
        full_env = {**os.environ, "APP_ENV": "test", "REDIS_URL": redis_url, "HOST": "127.0.0.1",
                    "PORT": str(self.port), "JWT_SECRET": JWT_SECRET, "EVENTS_API_KEY": EVENTS_KEY, **(env or {})}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "app", "serve", "--log-level", "warning"],
                                         cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: httpx.get(self.url + "/health/live", timeout=1).status_code == 200, 20,
                     f"service on {self.port}")
        except RuntimeError:
            self.stop()
            raise RuntimeError(f"service failed to start:\n{self.output()}") from None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, patience: float = 20) -> tuple[float, bool]:
        """SIGTERM; the seconds until the process exited, and whether it did by itself
        (it is killed after `patience` seconds)."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(patience)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            return time.monotonic() - start, False
        return time.monotonic() - start, True

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.terminate()
