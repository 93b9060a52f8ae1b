"""The processes a run measures: redis-server, the service, the baselines; and what the OS
says they cost (CPU seconds, RSS). Starting them reuses the test suite's own helpers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import redis

from tests.support.processes import (
    ROOT,
    RedisServer,
    ServiceProcess,
)

__all__ = [
    "PUBLIC_URL",
    "ROOT",
    "TWILIO_TOKEN",
    "BaselineProcess",
    "RedisOps",
    "RedisServer",
    "ServiceProcess",
    "cpu_seconds",
    "machine_busy",
    "rss_bytes",
    "service_env",
    "start_services",
]

TWILIO_TOKEN = "bench-twilio-auth-token-0123456789ab"
# What the service is told Twilio called; signatures are computed over this URL.
PUBLIC_URL = "https://callstate.bench.invalid"
_TICKS = os.sysconf("SC_CLK_TCK")


def service_env() -> dict[str, str]:
    return {"TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "PUBLIC_URL": PUBLIC_URL}


def start_services(redis_url: str, count: int) -> list[ServiceProcess]:
    """`count` separate `python -m app serve` processes, each on its own port, one Redis."""
    started: list[ServiceProcess] = []
    try:
        for _ in range(count):
            started.append(ServiceProcess(redis_url, env=service_env()))
    except BaseException:
        for p in started:
            p.stop()
        raise
    return started


class BaselineProcess(ServiceProcess):
    """A baseline ASGI app (`bench.baselines.<module>:app`) under uvicorn with the service's
    event loop and HTTP parser (uvloop, httptools) and uvicorn's default WebSocket settings
    (how python-socketio is usually deployed), on a free port."""

    def __init__(self, module: str, redis_url: str, env: dict[str, str] | None = None) -> None:
        self._start(
            [sys.executable, "-m", "uvicorn", "--factory", f"bench.baselines.{module}:app",
             "--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning",
             "--timeout-graceful-shutdown", "5"],
            f"bench-{module}", {"REDIS_URL": redis_url, **service_env(), **(env or {})},
        )


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores, from /proc/stat;
    two readings give how loaded the machine was in between (1.0 = every core busy)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return (total - idle) / _TICKS, total / _TICKS


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class RedisOps:
    """Commands Redis executed (every command, including those a Lua script runs), from
    INFO commandstats, so a scenario can report the Redis work it caused."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url)

    def total(self) -> int:
        info = self._client.info("commandstats")
        return sum(int(v["calls"]) for k, v in info.items() if k != "cmdstat_info")

    def by_command(self) -> dict[str, int]:
        info = self._client.info("commandstats")
        return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items()}

    def close(self) -> None:
        self._client.close()
