"""The one command: start Redis and the service, run each scenario for a bounded time against
its baseline, write `bench/results/<stamp>.{md,json,png}`.

`--redis single` (the default): one redis-server. `--redis cluster`: the single-node pass
first, then the cluster scenarios (CLUSTER_SCENARIOS) again on a real 3-master Redis Cluster,
with fresh service processes and baselines, so the report puts both side by side from one run.

`--server uvicorn` (the default): the service under uvicorn. `--server uvicorn,granian`: the
same, then the server scenarios (SERVER_SCENARIOS) again with the service under granian
(SERVER=granian, app.granian_server), on a fresh Redis, with fresh service processes and
baselines, side by side in the report. A cluster pass runs under the first server only."""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
import time
import traceback
from pathlib import Path

from app.config import SERVERS
from bench import report
from bench.context import Context
from bench.model import ScenarioResult
from bench.procs import REDIS_KINDS, ROOT, ServiceProcess, start_redis, start_services
from bench.scenarios import ORDER
from bench.sizes import DEFAULT, QUICK, Sizes
from bench.workers import raise_fd_limit

RESULTS = ROOT / "bench" / "results"
# What `--redis cluster` runs on the cluster (after the single-node pass of every chosen scenario).
CLUSTER_SCENARIOS = ("ingest", "push", "fanout")
# What each further server of `--server` runs (issue 14: where the server is what differs).
SERVER_SCENARIOS = ("push", "fanout", "snapshot", "memory")


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def _servers(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
    unknown = [n for n in names if n not in SERVERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {','.join(SERVERS)}, not {text!r}")
    return names


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="tiny sizes, sub-second phases (CI)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every count and rate")
    p.add_argument("--only", help=f"comma-separated subset of: {','.join(ORDER)}")
    p.add_argument("--redis", choices=REDIS_KINDS, default="single",
                   help="single: one redis-server (default); cluster: the same on one node, then "
                        f"{','.join(CLUSTER_SCENARIOS)} again on a real 3-master Redis Cluster, side by side")
    p.add_argument("--server", type=_servers, default=("uvicorn",),
                   help="the service's ASGI server(s): uvicorn (default); uvicorn,granian: everything under "
                        f"uvicorn, then {','.join(SERVER_SCENARIOS)} again under granian, side by side")
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    p.add_argument("--duration", type=float, help="seconds per measured phase")
    p.add_argument("--procs", type=int, help="service processes (and baseline processes)")
    p.add_argument("--loadgens", type=int, help="HTTP load-generator processes")
    p.add_argument("--fleets", type=int, help="WebSocket client processes")
    p.add_argument("--connections", type=int, help="HTTP connections per load generator")
    p.add_argument("--push-sockets", type=_ints, help="e.g. 100,1000,5000,10000")
    p.add_argument("--push-rates", type=_ints, help="events/s, e.g. 100,1000 (a rate may repeat: 100,1000,100)")
    p.add_argument("--fanout-sockets", type=int)
    p.add_argument("--fanout-rate", type=int, help="events/s at the first step of the fan-out ramp")
    p.add_argument("--fanout-steps", type=int, help="at most this many doublings of the fan-out offered rate")
    p.add_argument("--memory-sockets", type=_ints, help="e.g. 1000,5000")
    p.add_argument("--resume-sockets", type=int)
    p.add_argument("--profile", action="store_true",
                   help="sample the service with py-spy during each scenario; top frames go in the report")
    return p


def sizes_from(args: argparse.Namespace) -> Sizes:
    sizes = (QUICK if args.quick else DEFAULT).scaled(args.scale)
    overrides = {
        "duration": args.duration, "procs": args.procs, "loadgens": args.loadgens, "fleets": args.fleets,
        "http_connections": args.connections, "push_sockets": args.push_sockets, "push_rates": args.push_rates,
        "fanout_sockets": args.fanout_sockets, "fanout_rate": args.fanout_rate,
        "fanout_steps": args.fanout_steps,
        "memory_sockets": args.memory_sockets, "resume_sockets": args.resume_sockets,
    }
    return sizes.replace(**{k: v for k, v in overrides.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    sizes = sizes_from(args)
    chosen = [s.strip() for s in args.only.split(",")] if args.only else list(ORDER)
    unknown = set(chosen) - set(ORDER)
    if unknown:
        print(f"unknown scenario(s): {', '.join(sorted(unknown))}; choose from {', '.join(ORDER)}", file=sys.stderr)
        return 2
    raise_fd_limit()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    command = "python -m bench " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    doc = {"stamp": stamp, "command": command.strip(), "mode": "quick" if args.quick else "default",
           "scale": args.scale, "sizes": vars(sizes) | {}, "machine": report.machine_facts()}
    started = time.monotonic()
    results: list[ScenarioResult] = []
    errors: dict[str, str] = {}
    first, *others = args.server
    passes = [("single", first, chosen)]
    passes += [("single", server, [k for k in chosen if k in SERVER_SCENARIOS]) for server in others]
    if args.redis == "cluster":
        passes.append(("cluster", first, [k for k in chosen if k in CLUSTER_SCENARIOS]))
    doc["redis"] = {"mode": args.redis, "passes": {kind: keys for kind, server, keys in passes if server == first}}
    doc["servers"] = {"order": list(args.server),
                      "passes": {server: keys for kind, server, keys in passes if kind == "single"}}
    for kind, server, keys in passes:
        if not keys:
            continue
        label = _pass_label(kind, server, first)
        try:
            _run_pass(args, sizes, kind, server, keys, started, results, errors)
        except Exception as exc:  # noqa: BLE001 - Redis or a service failed: report what was measured
            errors[f"{label} pass"] = f"{type(exc).__name__}: {exc}"
            print(f"{label} pass FAILED:\n{traceback.format_exc()}", file=sys.stderr)
    doc["wall_seconds"] = time.monotonic() - started
    doc["errors"] = errors
    paths = report.write(args.out, stamp, doc, results)
    print((paths["md"]).read_text())
    for path in paths.values():
        print(f"wrote {path}", file=sys.stderr)
    return 1 if errors else 0


def _pass_label(kind: str, server: str, first: str) -> str:
    """How errors name a pass: `single` (the first server on one node), `cluster`, `granian`."""
    return kind if server == first else server


def _run_pass(args: argparse.Namespace, sizes: Sizes, kind: str, asgi: str, keys: list[str], started: float,
              results: list[ScenarioResult], errors: dict[str, str]) -> None:
    """Start Redis of this `kind` and the service on it under the `asgi` server, run `keys` in
    ORDER, stop everything. A failed scenario is noted in `errors` (as `key` in the first pass,
    `key@cluster` on the cluster, `key@granian` under granian)."""
    server = start_redis(kind)
    services: list[ServiceProcess] = []
    label = _pass_label(kind, asgi, args.server[0])
    try:
        ctx = Context(sizes=sizes, redis=server, services=services, started=started, server=asgi)
        services += start_services(server.url, max(2, sizes.procs), ctx.service_env())  # ctx.services is this list
        ctx.log(f"redis {server.url} ({server.label}: masters {server.master_urls}); "
                f"service under {asgi} on ports {[s.port for s in services]}; sizes {sizes}")
        for key in (k for k in ORDER if k in keys):
            ctx.log(f"scenario {key}")
            server.flush()
            try:
                module = importlib.import_module(f"bench.scenarios.{key}")
                profiler = _profiler(args, ctx, key)
                try:
                    result = module.run(ctx)
                finally:
                    if profiler is not None:
                        profile = profiler.finish()
                if profiler is not None:
                    result.raw["profile_top"] = profile
                result.redis, result.server = kind, asgi
                results.append(result)
            except Exception as exc:  # noqa: BLE001 - one failed scenario must not lose the others
                errors[key if label == "single" else f"{key}@{label}"] = f"{type(exc).__name__}: {exc}"
                ctx.log(f"scenario {key} FAILED:\n{traceback.format_exc()}")
            for svc in services:
                if svc.proc.poll() is not None:
                    raise RuntimeError(f"service on :{svc.port} died:\n{svc.output()[-3000:]}")
    finally:
        for svc in services:
            svc.stop()
        server.stop()


def _profiler(args: argparse.Namespace, ctx: Context, key: str):  # type: ignore[no-untyped-def]
    if not args.profile:
        return None
    from bench.profile import Profiler

    suffix = ("" if ctx.redis.kind == "single" else f"-{ctx.redis.kind}") + (
        "" if ctx.server == args.server[0] else f"-{ctx.server}")
    return Profiler([s.proc.pid for s in ctx.services], args.out / f"profile-{key}{suffix}")
