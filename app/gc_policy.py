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
right after a whole-heap one, and the count of what was frozen anew, below.)

Objects that die by reference counting still go at once, frozen or not; only frozen *cyclic*
garbage stays — and a closed connection is cyclic garbage (websockets' protocol, its parser
generator and uvicorn's `run_asgi` refer to each other), so the frozen set grows with
connection churn. Once a quarter of it (`reclaim_share`) has been frozen anew since it was last
made whole (counted as frozen; what died since is not subtracted), it is handed back
(`gc.unfreeze()`) and collected at the loop's next turn: one walk of the whole heap, as CPython
would have made, that reclaims the garbage, and the rest is frozen again. So a whole-heap
pause comes with growth (a storm, or closed connections replaced by new ones) of a quarter of
the heap — CPython's own rule, counted on what lasts — not from traffic, and the memory closed
connections hold meanwhile is bounded by the same share. Connections that close and are not
replaced stay frozen until the heap grows again (their memory was in use at the peak).

Installed once per serving process by the composition root (`app.composition.serving`), not
by `create_app`: an app built in a test process leaves that process's collector alone."""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

from app.observability.tally import LATENCY_BUCKETS, Histogram

RECLAIM_SHARE = 0.25  # CPython's own threshold for a full collection (a quarter of the old generation)
RECLAIM_FLOOR = 10_000  # objects frozen anew before the whole heap is walked, at the least


@dataclass
class GcCounts:
    """What the policy did (the tests read it; not on /metrics yet)."""

    frozen_since: int = 0  # objects frozen anew since the set was last made whole (deaths not counted)
    reclaims: int = 0  # whole-heap collections (the frozen set handed back and walked once)
    frozen_after_reclaim: int = 0  # the frozen set's size when last made whole


class GcPolicy:
    def __init__(self, reclaim_share: float = RECLAIM_SHARE, reclaim_floor: int = RECLAIM_FLOOR) -> None:
        if reclaim_share < 0:
            raise ValueError(f"reclaim_share must be >= 0, not {reclaim_share}")
        self.reclaim_share = reclaim_share
        self.reclaim_floor = reclaim_floor
        self.counts = GcCounts()
        self._reclaim_after = reclaim_floor
        self._reclaiming = False
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
        gc.collect()  # walks next to nothing: CPython's measure of the old generation is now ~0

    def uninstall(self) -> None:
        """Stop following collections and hand the frozen set back (tests)."""
        if not self._installed:
            return
        self._installed = False
        gc.callbacks.remove(self._on_gc)
        gc.unfreeze()

    def _made_whole(self) -> None:
        # A walk of the frozen set (gc_list_size): only here, after a whole-heap collection.
        # Reading it after every full collection cost ~200 ms at 10,000 sockets (cache misses).
        frozen = gc.get_freeze_count()
        self.counts.frozen_after_reclaim = frozen
        self.counts.frozen_since = 0
        self._reclaim_after = max(self.reclaim_floor, int(frozen * self.reclaim_share))

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        # Runs once a collection is complete ("stop"): the collector's lists are consistent, and
        # freeze/unfreeze only move them; nothing here collects (it schedules a collection).
        if phase != "stop" or info["generation"] != 2:
            return
        if self._reclaiming:  # this one walked the whole heap
            self._reclaiming = False
            self.counts.reclaims += 1
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
        if self.counts.frozen_since > self._reclaim_after:
            # A quarter of the set frozen anew since it was last whole (an upper bound of its
            # growth: what died since is not subtracted). Closed connections' cycles may be
            # among it: walk everything once, now, while the growth (a storm, churn) is under way.
            gc.unfreeze()
            self._reclaiming = True
            _soon(gc.collect)


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
