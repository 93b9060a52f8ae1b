"""Latency samples and the few summaries every scenario reports."""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable

PERCENTILES = (50.0, 90.0, 99.0, 100.0)


def samples(values: Iterable[int] = ()) -> array:  # type: ignore[type-arg]
    """A compact buffer of nanosecond samples (cheap to pickle between processes)."""
    return array("q", values)


def percentile(sorted_ns: list[int] | array, p: float) -> float:  # type: ignore[type-arg]
    """Nearest-rank percentile in milliseconds; NaN when there are no samples."""
    if not sorted_ns:
        return float("nan")
    rank = max(0, min(len(sorted_ns) - 1, math.ceil(p / 100.0 * len(sorted_ns)) - 1))
    return sorted_ns[rank] / 1e6


def summary(ns: Iterable[int]) -> dict[str, float]:
    """{"n", "p50", "p90", "p99", "max"} in milliseconds."""
    ordered = sorted(ns)
    out: dict[str, float] = {"n": float(len(ordered))}
    for p in PERCENTILES:
        out["max" if p == 100.0 else f"p{int(p)}"] = percentile(ordered, p)
    return out


def ratio(ours: float, baseline: float) -> float:
    """ours / baseline, NaN when either side is missing or the baseline is 0."""
    if math.isnan(baseline) or math.isnan(ours) or baseline == 0:
        return float("nan")
    return ours / baseline


def times(ours: float, baseline: float) -> str:
    """ours / baseline as a table cell (`0.52x`), `—` when it cannot be computed."""
    r = ratio(ours, baseline)
    return "—" if math.isnan(r) else f"{r:.2f}x"
