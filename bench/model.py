"""What a scenario hands back: metrics as ours-vs-baseline pairs, latency summaries for the
chart, and the issue's targets with where we stand."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bench.stats import ratio


@dataclass
class Metric:
    name: str
    unit: str
    ours: float
    baseline: float
    baseline_name: str
    better: str = "higher"  # or "lower"

    @property
    def ratio(self) -> float:
        return ratio(self.ours, self.baseline)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


@dataclass
class Target:
    text: str
    met: bool | None  # None: not measured at these sizes (e.g. --quick)
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Table:
    """A compact table the report prints above the metric rows (e.g. push: p50/p99/max side by
    side per phase); float cells are formatted like the metrics, strings as they are."""

    title: str
    headers: list[str]
    rows: list[list[str | float]]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ScenarioResult:
    key: str
    title: str
    measures: str
    metrics: list[Metric] = field(default_factory=list)
    # chart series: label -> {"p50","p90","p99","max","n"} in ms (or any unit named in chart_unit)
    latency: dict[str, dict[str, float]] = field(default_factory=dict)
    chart_unit: str = "ms"
    chart_keys: tuple[str, ...] = ("p50", "p90", "p99", "max")
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    redis: str = "single"  # the Redis topology it ran on: "single" or "cluster"
    server: str = "uvicorn"  # the ASGI server the service ran under: "uvicorn" or "granian"

    def metric(self, name: str, unit: str, ours: float, baseline: float, baseline_name: str,
               better: str = "higher") -> Metric:
        m = Metric(name, unit, ours, baseline, baseline_name, better)
        self.metrics.append(m)
        return m

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "redis": self.redis, "server": self.server, "title": self.title, "measures": self.measures,
            "metrics": [m.as_dict() for m in self.metrics], "latency_ms": self.latency,
            "chart_unit": self.chart_unit, "targets": [t.as_dict() for t in self.targets],
            "notes": self.notes, "tables": [t.as_dict() for t in self.tables], "raw": self.raw,
        }
