"""How big each scenario runs: the default (a few minutes on 2 cores), `--quick` (seconds, tiny,
for CI), and `--scale X` which multiplies every count and rate."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    duration: float = 5.0  # seconds of each measured phase
    procs: int = 1  # service processes (each baseline runs as many)
    loadgens: int = 1  # HTTP load-generator processes
    fleets: int = 2  # WebSocket client processes
    http_connections: int = 32  # per load generator
    # 1. ingest
    ingest_calls: int = 2000  # calls in flight at once, their callbacks interleaved
    # 4. snapshot reads: accounts x endpoints users, each viewing sessions_per_view sessions
    snapshot_accounts: int = 10
    snapshot_endpoints: int = 20
    sessions_per_view: int = 20
    # 2. push latency
    push_sockets: tuple[int, ...] = (100, 1000, 5000, 10000)
    push_rates: tuple[int, ...] = (100, 1000)  # events/s
    sockets_per_account: int = 10  # 1 manager + users on their own endpoints
    # 3. fan-out
    fanout_sockets: int = 1000
    fanout_accounts: int = 10
    fanout_rate: int = 200  # events/s: the first step of the ramp (a quarter of it: the fixed-load comparison)
    fanout_steps: int = 6  # ramp: double the offered rate up to this many times, until delivery falls behind
    # 5. memory
    memory_sockets: tuple[int, ...] = (1000, 5000)
    # 6. resume storm
    resume_sockets: int = 1000
    resume_events: int = 1000  # committed while the sockets are away

    def replace(self, **changes: object) -> Sizes:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def scaled(self, factor: float) -> Sizes:
        if factor == 1:
            return self

        def up(n: int) -> int:
            return max(1, round(n * factor))

        return self.replace(
            ingest_calls=up(self.ingest_calls), snapshot_endpoints=up(self.snapshot_endpoints),
            push_sockets=tuple(up(n) for n in self.push_sockets),
            push_rates=tuple(up(n) for n in self.push_rates),
            fanout_sockets=up(self.fanout_sockets), fanout_rate=up(self.fanout_rate),
            memory_sockets=tuple(up(n) for n in self.memory_sockets),
            resume_sockets=up(self.resume_sockets), resume_events=up(self.resume_events),
        )


DEFAULT = Sizes()

QUICK = Sizes(
    duration=0.6, fleets=1, http_connections=4, ingest_calls=20,
    snapshot_accounts=2, snapshot_endpoints=3, sessions_per_view=5,
    push_sockets=(10, 20), push_rates=(50,), sockets_per_account=5,
    fanout_sockets=20, fanout_accounts=2, fanout_rate=20, fanout_steps=2,
    memory_sockets=(10, 20), resume_sockets=20, resume_events=20,
)
