"""How a serving process runs Python's cyclic garbage collector (issue 14).

CPython's full (generation 2) collection walks every object the collector tracks, on the
event loop's thread: with many live connections that is a stall of every socket. Measured on
the 2-core dev machine (a fresh `python -m app serve`, idle subscribed sockets, the machine
otherwise quiet): ~56k tracked objects and a 14 ms full collection at start-up, ~80 more
objects per live socket: 436k / 145 ms with 5,000 sockets, 816k / 412 ms with 10,000 (up to
~730 ms under the bench's load). CPython starts one whenever the objects promoted into the
oldest generation since the last reach a quarter of what that one left, so the tail of a
connection storm, or steady traffic promoting short-lived objects, sets one off minutes after
the sockets arrived: the push bench's 140-250 ms p99 at 5,000 sockets.

The policy: everything start-up made, and then whatever survives each full collection, moves
to the permanent generation (`gc.freeze()`), which collections skip. A full collection then
walks only what was promoted since the last one (new sockets, survivors of traffic), and since
CPython schedules the next by what the last one left (a quarter of it promoted since), they
come often and stay small. (Two versions measured on the way: freezing only those survivors
left the collection after a whole-heap one walking a storm's tail, 159k objects, 123 ms, in a
10,000-socket phase; freezing at every generation-1 collection stopped CPython's full
collections altogether, as `gc.freeze()` zeroes its counts, and delayed the growth check into
steady traffic; reading the frozen set's size (`gc.get_freeze_count()`, a walk of the set)
after each full collection cost ~200 ms of CPU at 10,000 sockets. Hence the extra collection
right after a whole-heap one, and the count of what was frozen anew, below.) To keep each of
them small, the policy also makes them come sooner: a generation-1 collection after every two
young ones (`MIDDLE_AFTER_YOUNG`, CPython's default 10) and a full one after every
generation-1 one (`FULL_AFTER_MIDDLE`, 10), so a full collection walks what two young
collections left, not what a hundred did. With 10,000 sockets at 100 events/s (the feeds kept
~14 tracked objects for each change they relayed, app.live.feed; ~10 now, app.domain.changes)
a full collection walked ~35k objects, 35-45 ms, with CPython's thresholds and ~5k, 3-10 ms,
with these: push p99 34 -> 16 ms.

Objects that die by reference counting still go at once, frozen or not; only frozen *cyclic*
garbage stays, and a closed connection is cyclic garbage (websockets' protocol, its parser
generator and uvicorn's `run_asgi` refer to each other). So the set is handed back
(`gc.unfreeze()`) and collected at the loop's next turn, one walk of the whole heap that reclaims
the garbage (and the rest is frozen again), when there is reason to think garbage is there:

- **reported garbage**: every live connection (WebSocket, SSE, long poll: the hub's) that was
  frozen (a full collection ran while it was open) and has closed is counted as
  `OBJECTS_PER_CONNECTION` objects of garbage (`opened`, `ended`). A quarter of the frozen set
  (`reclaim_share`) of those and the set is made whole. A draining hub reports nothing (the
  process is about to exit). A stopped feed lets go of what it held (app.live.feed), so only
  its shell waits;
- **unreported garbage** (anything else that was frozen and died in a cycle: an HTTP keep-alive
  connection, a finished task's traceback): bounded by growth. Once the process's allocated
  memory blocks (`sys.getallocatedblocks()`, read after each full collection: ~50 us), less
  `BLOCKS_PER_CONNECTION` for each connection opened since, have grown by as much as they were
  when the set was last whole (`growth_share`), and by at least `growth_floor`, it is made whole.

Why not growth alone (this policy's first version: a quarter of the set frozen anew): steady
traffic freezes, at each full collection, whatever it has in flight at that moment (queued
frames, requests), and almost all of it then dies by reference count. Counted as growth, that
handed a set of 1,000 sockets back every ~30 s of 20,000 frames/s: a 133 ms stall (three full
collections) in traffic, the fan-out ramp's 150 ms p99, and 700 ms at 10,000 sockets
(bench/README.md). Memory blocks count what is alive, so traffic alone does not add up to a
reclaim. Nor does a storm of new sockets (their blocks are accounted for), nor the feeds'
memory of what they relayed filling up with traffic (up to ~100 blocks a change; ~500k blocks
in 5 s at 1,000 events/s: hence the floor, in a process that started at ~250k). Closed
connections are walked for as they close. What is left to the growth rule is garbage nobody
reports: in the push and fan-out benches the whole-heap walks it started freed ~2% of the heap.

Installed once per serving process by the composition root (`app.composition.serving`), not
by `create_app`: an app built in a test process leaves that process's collector alone."""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

from app.observability.tally import LATENCY_BUCKETS, Histogram

RECLAIM_SHARE = 0.25  # reported garbage vs the frozen set: CPython's own threshold for a full collection
GROWTH_SHARE = 1.0  # growth of allocated memory blocks since the set was last whole, net of new connections
GROWTH_FLOOR = 1_000_000  # ... and at least this many blocks (~60 MB): caches filling in a small process
RECLAIM_FLOOR = 10_000  # objects of reported garbage before the whole heap is walked, at the least
OBJECTS_PER_CONNECTION = 80  # tracked objects a live socket adds (measured: 436k with 5,000, 816k with 10,000)
BLOCKS_PER_CONNECTION = 95  # memory blocks an idle live socket adds (98 measured, 1,343 to 5,000 sockets): not garbage
MIDDLE_AFTER_YOUNG = 2  # generation-0 collections between generation-1 ones, at the most (CPython's: 10)
FULL_AFTER_MIDDLE = 1  # generation-1 collections between full ones, at the least (CPython's: 10)


@dataclass
class GcCounts:
    """What the policy did (`GET /metrics`, and the tests)."""

    frozen_since: int = 0  # objects frozen anew since the set was last made whole (deaths not counted)
    frozen_after_reclaim: int = 0  # the frozen set's size when last made whole
    ended: int = 0  # reported garbage since the set was last made whole: frozen connections closed, in objects
    live: int = 0  # connections open (opened and not yet ended)
    reclaimed: int = 0  # objects the whole-heap collections found unreachable (and freed), all told
    reclaims_by_cause: dict[str, int] = field(default_factory=lambda: {"ended": 0, "growth": 0})

    @property
    def reclaims(self) -> int:
        """Whole-heap collections (the frozen set handed back and walked once), whatever the cause."""
        return sum(self.reclaims_by_cause.values())


class GcPolicy:
    def __init__(self, reclaim_share: float = RECLAIM_SHARE, reclaim_floor: int = RECLAIM_FLOOR,
                 growth_share: float = GROWTH_SHARE, growth_floor: int = GROWTH_FLOOR,
                 blocks_per_connection: int = BLOCKS_PER_CONNECTION,
                 blocks: Callable[[], int] = sys.getallocatedblocks) -> None:
        if reclaim_share < 0:
            raise ValueError(f"reclaim_share must be >= 0, not {reclaim_share}")
        if growth_share < 0:
            raise ValueError(f"growth_share must be >= 0, not {growth_share}")
        self.reclaim_share = reclaim_share
        self.reclaim_floor = reclaim_floor
        self.growth_share = growth_share
        self.growth_floor = growth_floor
        self.blocks_per_connection = blocks_per_connection
        self.counts = GcCounts()
        self._blocks = blocks
        self._reclaim_after = reclaim_floor  # reported garbage, in objects
        self._grown_past = 0  # allocated blocks, net of live connections' (`_unexplained`)
        self._live_when_whole = 0
        self._full = 0  # full collections since installed: a connection's mark (`opened`)
        self._reclaiming: str | None = None  # the cause, between the hand-back and the walk
        self._thresholds: tuple[int, int, int] = gc.get_threshold()
        self._installed = False

    @property
    def installed(self) -> bool:
        return self._installed

    def install(self) -> None:
        """Collect and freeze what start-up made (modules, the app), then follow every full
        collection. Once per process."""
        if self._installed:
            return
        self._installed = True
        gc.collect()
        gc.freeze()
        self._made_whole()
        gc.callbacks.append(self._on_gc)
        self._thresholds = gc.get_threshold()
        young, middle, full = self._thresholds
        # Full ones more often, each walking less: what two young collections left, not a hundred's.
        gc.set_threshold(young, min(middle, MIDDLE_AFTER_YOUNG), min(full, FULL_AFTER_MIDDLE))
        gc.collect()  # walks next to nothing: CPython's measure of the old generation is now ~0

    def uninstall(self) -> None:
        """Stop following collections and hand the frozen set back (tests)."""
        if not self._installed:
            return
        self._installed = False
        gc.callbacks.remove(self._on_gc)
        gc.set_threshold(*self._thresholds)
        gc.unfreeze()

    # -- what ended (the hub reports its connections) ---------------------------------------
    def opened(self) -> int:
        """A connection's mark, taken when it opens: `ended` tells by it whether it was frozen."""
        self.counts.live += 1
        return self._full

    def ended(self, opened: int, objects: int = OBJECTS_PER_CONNECTION) -> None:
        """A connection marked `opened` has closed. If a full collection ran while it was open it
        was frozen, and is now (cyclic) garbage in the frozen set: counted toward a reclaim.
        Otherwise the young collections have it, as without this policy."""
        self.counts.live -= 1
        if opened == self._full or not self._installed:
            return
        self.counts.ended += objects
        if self.counts.ended > self._reclaim_after:
            self._reclaim("ended")

    # -- the collector's callback ---------------------------------------------------------
    def _made_whole(self) -> None:
        # A walk of the frozen set (gc_list_size): only here, after a whole-heap collection.
        # Reading it after every full collection cost ~200 ms at 10,000 sockets (cache misses).
        frozen = gc.get_freeze_count()
        self.counts.frozen_after_reclaim = frozen
        self.counts.frozen_since = 0
        self.counts.ended = 0
        self._reclaim_after = max(self.reclaim_floor, int(frozen * self.reclaim_share))
        self._live_when_whole = self.counts.live
        unexplained = self._unexplained()
        self._grown_past = unexplained + max(self.growth_floor, int(unexplained * self.growth_share))

    def _unexplained(self) -> int:
        """Allocated memory blocks, less what the connections opened since the set was whole hold."""
        return self._blocks() - self.blocks_per_connection * (self.counts.live - self._live_when_whole)

    def allocated_blocks(self) -> int:
        return self._blocks()

    def _reclaim(self, cause: str) -> None:
        """Hand the frozen set back; the next full collection (at the loop's next turn) walks it."""
        if self._reclaiming is not None:
            return
        gc.unfreeze()
        self._reclaiming = cause
        _soon(gc.collect)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        # Runs once a collection is complete ("stop"): the collector's lists are consistent, and
        # freeze/unfreeze only move them; nothing here collects (it schedules a collection).
        if phase != "stop" or info["generation"] != 2:
            return
        self._full += 1
        if self._reclaiming is not None:  # this one walked the whole heap
            self.counts.reclaimed += info["collected"]
            self.counts.reclaims_by_cause[self._reclaiming] += 1
            self._reclaiming = None
            gc.freeze()
            self._made_whole()
            # CPython starts its next full collection once a quarter of what the last one left
            # has been promoted: a whole heap's quarter now, and that collection would walk it.
            # One more right away leaves it ~0, so the next ones come often and walk little.
            _soon(gc.collect)
            return
        # Everything older is frozen: what this one walked and kept arrived since the last
        # (new sockets, survivors of traffic). Freeze it too.
        self.counts.frozen_since += len(gc.get_objects(2))
        gc.freeze()
        if self._unexplained() > self._grown_past:
            # Memory grew by the share since the set was last whole, and not by connections
            # opened since: garbage nobody reported (or caches filling), which this bounds.
            self._reclaim("growth")


class GcPauses:
    """How long each collection held the event loop, by generation (GET /metrics), whatever the
    policy: so `GC_POLICY=default` and `freeze` can be compared in production too."""

    def __init__(self) -> None:
        self.seconds = {generation: Histogram(LATENCY_BUCKETS) for generation in range(3)}
        self._started = 0.0
        self._installed = False

    def install(self) -> None:
        """Before the policy's, so its own work after a collection is not counted as the pause."""
        if not self._installed:
            self._installed = True
            gc.callbacks.insert(0, self._on_gc)

    def uninstall(self) -> None:
        if self._installed:
            self._installed = False
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds[info["generation"]].observe(time.perf_counter() - self._started)


def _soon(fn: Callable[[], object]) -> None:
    """At the event loop's next turn, if this thread runs one; else CPython's next collection does it."""
    try:
        asyncio.get_running_loop().call_soon(fn)
    except RuntimeError:
        pass
