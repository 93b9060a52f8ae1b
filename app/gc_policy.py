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

The policy: what survives two young collections (generation 1's), and what is alive after a
full collection, is moved to the permanent generation (`gc.freeze()`), which later collections
skip. A full collection then walks next to nothing: only what was promoted since the last
generation-1 collection. (Freezing only after full collections left each one walking every
object promoted since the last, the tail of a connection storm: 159k objects, 123 ms, in a
measured phase at 10,000 sockets.)
Objects that die by reference counting still go at once, frozen or not; only frozen *cyclic*
garbage stays — and a closed connection is cyclic garbage (websockets' protocol, its parser
generator and uvicorn's `run_asgi` refer to each other), so the frozen set grows with
connection churn. When it has grown by `reclaim_share` since it was last made whole, it is
handed back (`gc.unfreeze()`) and collected at the loop's next turn: that collection walks
everything once, as CPython would have, reclaims that garbage, and the rest is frozen again. So a whole-heap pause comes
once per `reclaim_share` of the heap in connections closed and replaced (CPython's own
quarter rule, counted on what lasts), not on a timer and not from traffic alone; the memory
held by closed connections meanwhile is bounded by the same share.

Installed once per serving process by the composition root (`app.composition.serving`), not
by `create_app`: an app built in a test process leaves that process's collector alone."""

from __future__ import annotations

import asyncio
import gc
from dataclasses import dataclass
from typing import Any

RECLAIM_SHARE = 0.25  # CPython's own threshold for a full collection (a quarter of the old generation)


@dataclass
class GcCounts:
    """What the policy did, for /metrics and the tests."""

    freezes: int = 0  # full collections after which the frozen set was checked
    reclaims: int = 0  # whole-heap collections (the frozen set handed back and walked once)
    frozen_after_reclaim: int = 0  # the frozen set's size when last made whole


class GcPolicy:
    def __init__(self, reclaim_share: float = RECLAIM_SHARE) -> None:
        if reclaim_share < 0:
            raise ValueError(f"reclaim_share must be >= 0, not {reclaim_share}")
        self.reclaim_share = reclaim_share
        self.counts = GcCounts()
        self._reclaim_at = 0
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

    def uninstall(self) -> None:
        """Stop following collections and hand the frozen set back (tests)."""
        if not self._installed:
            return
        self._installed = False
        gc.callbacks.remove(self._on_gc)
        gc.unfreeze()

    def _made_whole(self) -> None:
        frozen = gc.get_freeze_count()
        self.counts.frozen_after_reclaim = frozen
        self._reclaim_at = int(frozen * (1 + self.reclaim_share))

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        # Runs once a collection is complete ("stop"): the collector's lists are consistent, and
        # freeze/unfreeze only move them; nothing here allocates much or collects.
        if phase != "stop" or info["generation"] == 0 or (self._reclaiming and info["generation"] == 1):
            return  # (while the set is handed back, a young collection must not freeze it again)
        # What survived two young collections (the new sockets of a storm, mostly) joins the
        # frozen set now: CPython would promote it and walk it again at every full collection.
        gc.freeze()
        if info["generation"] == 1:
            return
        if self._reclaiming:  # this one walked the whole heap
            self._reclaiming = False
            self.counts.reclaims += 1
            self._made_whole()
            return
        self.counts.freezes += 1
        if gc.get_freeze_count() > self._reclaim_at:  # a walk of the frozen set: only here, rarely
            # Grown by the share since it was last whole (closed connections among it, most
            # likely): the next full collection walks everything once. Now, while the growth
            # (a connection storm, churn) is under way, rather than whenever CPython's own
            # count next calls for a full collection, maybe long after, in steady traffic.
            gc.unfreeze()
            self._reclaiming = True
            try:
                asyncio.get_running_loop().call_soon(gc.collect)
            except RuntimeError:  # no loop in this thread: the next full collection does it
                pass
