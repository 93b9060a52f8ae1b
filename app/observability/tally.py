"""The process's counters that no other object keeps (pure; ints and bucket counts).

Other modules bump them in one line (`TALLY.slow_closes += 1`); `/metrics` reads
them at scrape time. One per process, like the event loop they count on."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
EVENT_AGE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass
class Histogram:
    """Cumulative-at-read bucket counts, as Prometheus wants them; observe is one bisect."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, int]]:
        out, running = [], 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts):
            running += count
            out.append((bound, running))
        return out


@dataclass
class Tally:
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (route, outcome)
    rejections: Counter[tuple[str, str]] = field(default_factory=Counter)  # (route, errorCode)
    starts: Counter[str] = field(default_factory=Counter)  # snapshot | resumed | reset
    slow_closes: int = 0
    conflations: int = 0  # send queues that overflowed and conflated (app.live.outbox)
    drains: int = 0
    pubsub_reconnects: int = 0
    streaming: Counter[str] = field(default_factory=Counter)  # open SSE / long-poll requests
    commit_seconds: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))
    arrival_to_write_seconds: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))
    arrival_to_ack_seconds: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))
    event_time_to_write_seconds: dict[str, Histogram] = field(default_factory=dict)  # by source
    # The sweep (app/sweep/): passes, fetches, asked, confirmed, resolved:<status>, lost, stale, errors.
    sweep: Counter[str] = field(default_factory=Counter)

    def event_age(self, source: str) -> Histogram:
        found = self.event_time_to_write_seconds.get(source)
        if found is None:
            found = self.event_time_to_write_seconds[source] = Histogram(EVENT_AGE_BUCKETS)
        return found


TALLY = Tally()
