"""The processes a drill runs: a redis-server that can be killed and restarted on the same
port and data (with or without AOF), and the service (`python -m app serve`), on the
servers of bench/servers.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.servers import ROOT, RedisNode, free_port, wait_until


JWT_SECRET = "drill-jwt-secret-0123456789abcdef"
EVENTS_KEY = "drill-events-key"


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Redis(RedisNode):
    """redis-server on loopback that a drill kills (`kill`, -9) and starts again (`start`) on
    the same port and data. `aof`: appendonly with `appendfsync always` (an acknowledged write
    is on disk); otherwise no persistence at all."""

    def __init__(self, aof: bool) -> None:
        self.aof = aof
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if aof else ["--appendonly", "no"]
        super().__init__(free_port(), "--save", "", *persistence)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.restart()


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
            wait_until(lambda: httpx.get(self.url + "/health/live", timeout=1).status_code == 200, 20,
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
