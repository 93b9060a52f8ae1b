"""`python -m bench.drills [--quick] [--only NAME ...]`: run the drills, print their figures."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from bench.drills.failures import process_kill, redis_restart, sigterm_with_stalled_readers
from bench.drills.fuzz import fuzz
from bench.drills.sockets import connection_flood, slow_consumers

Drill = Callable[[bool], Awaitable[dict[str, Any]]]
DRILLS: dict[str, Drill] = {
    "redis_restart_aof": functools.partial(redis_restart, aof=True),
    "redis_restart_no_persistence": functools.partial(redis_restart, aof=False),
    "process_kill": process_kill,
    "sigterm_stalled": sigterm_with_stalled_readers,
    "connection_flood": connection_flood,
    "slow_consumers": slow_consumers,
    "fuzz": fuzz,
}


async def run(names: list[str], quick: bool) -> dict[str, dict[str, Any]]:
    return {name: await DRILLS[name](quick) for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.drills", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the short versions (seconds each)")
    parser.add_argument("--only", nargs="+", choices=sorted(DRILLS), default=list(DRILLS))
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    figures = asyncio.run(run(args.only, args.quick))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
