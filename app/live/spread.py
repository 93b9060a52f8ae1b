"""Periodic work over every account, spread over its interval: each account's share runs in one
of `PARTS` ticks a `1/PARTS` of the interval apart, always the same one, rather than all of it
in one turn of the event loop. (One turn renewing the presence leases of 10,000 sockets held the
loop ~37 ms every 2 s, issue 14.)"""

from __future__ import annotations

import asyncio
import itertools
import zlib
from collections.abc import AsyncIterator

PARTS = 10


def part_of(account_id: str, parts: int = PARTS) -> int:
    """Which of `parts` ticks the account's share runs in: stable across processes and restarts."""
    return zlib.crc32(account_id.encode()) % parts if parts > 1 else 0


async def ticks(interval: float) -> AsyncIterator[int]:
    """For ever: wait a `1/PARTS` of `interval`, then give the part whose accounts' share is due."""
    for part in itertools.cycle(range(PARTS)):
        await asyncio.sleep(interval / PARTS)
        yield part
