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

from bench.model import Metric, ScenarioResult
from bench.stats import ratio

PACKAGES = ("starlette", "uvicorn", "granian", "uvloop", "httptools", "websockets", "redis", "hiredis", "msgspec",
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
    if any(r.redis == "cluster" for r in results):
        lines += [
            ("Redis: the scenarios titled *one Redis node and a Redis Cluster* ran twice in this run, first on one node, then "
             "on a real 3-master Redis Cluster (no replicas, on loopback) with fresh service processes and "
             "baselines given one node's URL (the service discovers the cluster; the baselines use "
             "redis-py's `RedisCluster`). Tables put both side by side; *cluster ÷ one node* compares our "
             "figure on each. Redis commands are summed over every master, without INFO and CLUSTER "
             "(slot-map reads). Where a name differs between the two (an offered rate derived from "
             "that pass's own maximum), it reads *one node / cluster*."), ""]
    if len({r.server for r in results}) > 1:
        lines += [
            ("Server: the scenarios titled *uvicorn and granian* ran twice in this run, first with the service under "
             "uvicorn (`python -m app serve`, its WebSocket protocol app.live.uvicorn_ws), then under granian "
             "(`SERVER=granian`: embedded, one worker, uvloop, plain ASGI), each pass on a fresh Redis with fresh "
             "service processes and baselines (the baselines run under uvicorn in both). *granian ÷ uvicorn* "
             "compares our figure in each."), ""]
    targets: list[tuple[str, str, str]] = []
    for key in dict.fromkeys(r.key for r in results):
        base, *others = [r for r in results if r.key == key]
        if not others:
            lines += _table(base)
        for other in others:
            lines += _side_by_side(base, other)
        for r in (base, *others):
            targets += [(t.text + _where(r), {True: "**met**", False: "**missed**", None: "not measured"}[t.met],
                         t.detail) for t in r.targets]
    if targets:
        lines += ["## Targets (issue 5)", "", "| target | status | where we stand |", "| --- | --- | --- |"]
        lines += [f"| {t} | {s} | {d} |" for t, s, d in targets]
        lines.append("")
    if doc.get("errors"):
        lines += ["## Scenarios that failed", ""] + [f"- **{k}**: {v}" for k, v in doc["errors"].items()] + [""]
    if chart:
        lines += [f"![latency percentiles]({chart})", ""]
    return "\n".join(lines)


def _how(x: Metric) -> str:
    return ", ".join(p for p in (x.unit, "↑ better" if x.better == "higher" else "↓ better") if p)


def _title(r: ScenarioResult) -> str:
    return (r.title + (" — Redis Cluster (3 masters)" if r.redis == "cluster" else "")
            + (f" — {r.server}" if r.server != "uvicorn" else ""))


def _where(r: ScenarioResult) -> str:
    """What a target's line says of the pass it was measured in, if not the default one."""
    return "".join(f" ({p})" for p, on in (("Redis Cluster", r.redis == "cluster"), (r.server, r.server != "uvicorn"))
                   if on)


def _pass_names(a: ScenarioResult, b: ScenarioResult) -> tuple[str, str, str]:
    """(a's label, b's label, the title's words) for two passes of one scenario: they differ
    in the Redis they ran on, or else in the server."""
    if a.redis != b.redis:
        names = {"single": "one node", "cluster": "cluster"}
        return names[a.redis], names[b.redis], "one Redis node and a Redis Cluster (3 masters)"
    return a.server, b.server, f"{a.server} and {b.server}"


def _tables(r: ScenarioResult, label: str = "") -> list[str]:
    """The scenario's compact tables (e.g. push: p50 / p99 / max per phase, both sides)."""
    lines: list[str] = []
    for t in r.tables:
        lines += [f"{label}{t.title}:", "", "| " + " | ".join(t.headers) + " |",
                  "| " + " | ".join(["---"] + ["---:"] * (len(t.headers) - 1)) + " |"]
        lines += ["| " + " | ".join(c if isinstance(c, str) else _fmt(c) for c in row) + " |" for row in t.rows]
        lines.append("")
    return lines


def _table(r: ScenarioResult) -> list[str]:
    lines = [f"## {_title(r)}", "", r.measures, "", *_tables(r),
             "| metric | ours | baseline | ratio | baseline is |", "| --- | ---: | ---: | ---: | --- |"]
    for x in r.metrics:
        lines.append(f"| {x.name} ({_how(x)}) | {_fmt(x.ours)} | {_fmt(x.baseline)} | {_ratio(x.ratio)} "
                     f"| {x.baseline_name} |")
    lines.append("")
    lines += [f"- {note}" for note in r.notes]
    if r.notes:
        lines.append("")
    return lines


def _merge_names(a: str, b: str) -> str:
    """One row name for the same metric of two passes: words that differ (a rate measured in
    each pass) read `a / b`."""
    if a == b:
        return a
    wa, wb = a.split(" "), b.split(" ")
    if len(wa) != len(wb):
        return f"{a} / {b}"
    return " ".join(x if x == y else f"{x} / {y}" for x, y in zip(wa, wb))


def _pairs(first: ScenarioResult, second: ScenarioResult) -> list[tuple[Metric | None, Metric | None]]:
    """The same metrics of both passes: by position when both lists match (names may differ by
    a measured rate), else by name."""
    a, b = first.metrics, second.metrics
    if len(a) == len(b) and all(x.name.split(" ")[0] == y.name.split(" ")[0] for x, y in zip(a, b)):
        return list(zip(a, b))
    names = list(dict.fromkeys([x.name for x in a] + [y.name for y in b]))
    by_a, by_b = {x.name: x for x in a}, {y.name: y for y in b}
    return [(by_a.get(n), by_b.get(n)) for n in names]


def _side_by_side(first: ScenarioResult, second: ScenarioResult) -> list[str]:
    one, two, what = _pass_names(first, second)
    lines = [f"## {first.title} — {what}", "", first.measures, "",
             *_tables(first, f"{one.capitalize()}: "), *_tables(second, f"{two.capitalize()}: "),
             f"| metric | {one}: ours | baseline | ratio | {two}: ours | baseline | ratio "
             f"| {two} ÷ {one} (ours) | baseline is |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for x, y in _pairs(first, second):
        ref = x or y
        assert ref is not None
        name = _merge_names(x.name, y.name) if x and y else ref.name
        row = [f"{name} ({_how(ref)})"]
        for m in (x, y):
            row += [_fmt(m.ours), _fmt(m.baseline), _ratio(m.ratio)] if m else ["—", "—", "—"]
        row.append(_ratio(ratio(y.ours, x.ours)) if x and y else "—")
        row.append(ref.baseline_name)
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    for label, r in ((one, first), (two, second)):
        lines += [f"- {label}: {note}" for note in r.notes]
    lines.append("")
    return lines


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
        ax.set_title(_title(r), fontsize=10)
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
