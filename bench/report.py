"""Writing a run down: `<stamp>.json` (everything, with machine facts), `<stamp>.md` (the
tables), `<stamp>.png` (latency percentiles, one panel per scenario)."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.model import ScenarioResult

PACKAGES = ("starlette", "uvicorn", "uvloop", "httptools", "websockets", "redis", "hiredis", "msgspec",
            "PyJWT", "python-socketio", "python-engineio", "aiohttp", "matplotlib")


def machine_facts() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "redis_server": _run(["redis-server", "--version"]),
        "git_commit": _run(["git", "rev-parse", "--short", "HEAD"]),
        "git_dirty": bool(_run(["git", "status", "--porcelain", "--untracked-files=no"])),
        "load_average_at_start": list(os.getloadavg()),
        "packages": versions,
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _run(cmd: list[str]) -> str | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _fmt(v: float) -> str:
    if math.isnan(v):
        return "—"
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    if abs(v) >= 0.1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def _ratio(v: float) -> str:
    return "—" if math.isnan(v) or math.isinf(v) else f"{v:.2f}x"


def markdown(doc: dict[str, Any], results: list[ScenarioResult], chart: str | None) -> str:
    m = doc["machine"]
    lines = [
        f"# Benchmark run {doc['stamp']}", "",
        (f"`{doc['command']}` — mode **{doc['mode']}**, {doc['sizes']['procs']} service process(es) in the HTTP "
        "scenarios (live scenarios: sockets on one process, events posted to another, for both sides), "
        f"{doc['sizes']['duration']} s per measured phase, wall time {doc['wall_seconds']:.0f} s."), "",
        (f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, {m['os']}, Python {m['python']}, "
        f"{m['redis_server'] or 'redis-server ?'}; commit {m['git_commit']}{' (dirty)' if m['git_dirty'] else ''}; "
        f"load average at start {', '.join(f'{x:.2f}' for x in m['load_average_at_start'])}."), "",
        ("Every figure is measured in this run, on this machine, against a baseline run the same way "
        "in the same run; *ratio* is ours ÷ baseline (for rates higher is better, for times and "
        "costs lower is better)."), "",
    ]
    targets: list[tuple[str, str, str]] = []
    for r in results:
        lines += [f"## {r.title}", "", r.measures, "",
                  "| metric | ours | baseline | ratio | baseline is |", "| --- | ---: | ---: | ---: | --- |"]
        for x in r.metrics:
            how = ", ".join(p for p in (x.unit, "↑ better" if x.better == "higher" else "↓ better") if p)
            lines.append(f"| {x.name} ({how}) | {_fmt(x.ours)} | {_fmt(x.baseline)} | {_ratio(x.ratio)} "
                         f"| {x.baseline_name} |")
        lines.append("")
        for note in r.notes:
            lines.append(f"- {note}")
        if r.notes:
            lines.append("")
        targets += [(t.text, {True: "**met**", False: "**missed**", None: "not measured"}[t.met], t.detail)
                    for t in r.targets]
    if targets:
        lines += ["## Targets (issue 5)", "", "| target | status | where we stand |", "| --- | --- | --- |"]
        lines += [f"| {t} | {s} | {d} |" for t, s, d in targets]
        lines.append("")
    if doc.get("errors"):
        lines += ["## Scenarios that failed", ""] + [f"- **{k}**: {v}" for k, v in doc["errors"].items()] + [""]
    if chart:
        lines += [f"![latency percentiles]({chart})", ""]
    return "\n".join(lines)


def chart(results: list[ScenarioResult], path: Path) -> bool:
    """One panel per scenario: p50/p90/p99/max of every series, log scale."""
    panels = [r for r in results if r.latency]
    if not panels:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator

    cols = 2 if len(panels) > 1 else 1
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols, 3.8 * rows), squeeze=False)
    for ax, r in zip([a for row in axes for a in row], panels):
        keys = r.chart_keys
        series = list(r.latency.items())
        width = 0.8 / max(1, len(series))
        lowest = math.inf
        for i, (label, summ) in enumerate(series):
            values = [summ.get(k, float("nan")) for k in keys]
            values = [v if not math.isnan(v) and v > 0 else 0 for v in values]
            lowest = min([lowest, *(v for v in values if v > 0)])
            xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(keys))]
            ax.bar(xs, values, width, label=label)
        ax.set_xticks(range(len(keys)), keys)
        ax.set_yscale("log")
        if lowest < math.inf:
            ax.set_ylim(bottom=lowest / 3)
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_ylabel(r.chart_unit)
        ax.set_title(r.title, fontsize=10)
        ax.legend(fontsize=6.5, ncol=2 if len(series) > 4 else 1)
        ax.grid(axis="y", alpha=0.3)
    for ax in [a for row in axes for a in row][len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write(out_dir: Path, stamp: str, doc: dict[str, Any], results: list[ScenarioResult]) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / f"{stamp}.json", "md": out_dir / f"{stamp}.md", "png": out_dir / f"{stamp}.png"}
    drew = chart(results, paths["png"])
    doc = {**doc, "scenarios": [r.as_dict() for r in results], "chart": paths["png"].name if drew else None}
    paths["json"].write_text(json.dumps(_clean(doc), indent=2, allow_nan=False) + "\n")
    paths["md"].write_text(markdown(doc, results, paths["png"].name if drew else None))
    if not drew:
        del paths["png"]
    return paths


def _clean(o: Any) -> Any:
    """JSON has no NaN/Infinity: a figure that could not be measured is null."""
    if isinstance(o, float):
        return None if math.isnan(o) or math.isinf(o) else o
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o
