"""Paced garbage collection for a server process (I/O: the process's GC and loop timers).

A process holding thousands of live sockets keeps hundreds of thousands of
long-lived objects. CPython's automatic collector runs a full (generation 2)
pass whenever the objects promoted since the last one reach a quarter of the
long-lived heap, and each pass scans the whole heap: while 5,000 sockets
connected that was a series of 20–770 ms stalls (measured with `gc.callbacks`
during `python -m bench --only push`), which land on every socket's patches.
Paced, the process instead:

- freezes what exists once it has started (modules, classes, settings: alive
  for the process's lifetime), so no pass scans them again;
- collects the young generations on a short timer (cheap: recent objects only);
- runs a full pass on a long timer and then freezes its survivors (they have
  lived through every young collection: sockets, sessions, caches), so the
  next full pass scans only what became long-lived since;
- every `thaw_every` full passes, thaws everything and runs one whole-heap
  pass, which frees reference cycles among objects frozen earlier (a closed
  socket's, say): one long stall per `full_interval * thaw_every`, not several
  per burst of connections.

Objects freed by reference counting (almost all) are freed at once, frozen or
not; only cyclic garbage waits, at most `full_interval * thaw_every`."""

from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger("app.gc")


_pacers = 0  # started and not stopped in this process (tests may run several apps)


class GcPacer:
    """Started and stopped by the app's lifespan (`gc_paced`, `gc_young_interval`,
    `gc_full_interval`, `gc_thaw_every` settings)."""

    def __init__(self, young_interval: float, full_interval: float, thaw_every: int = 10) -> None:
        self.young_interval = young_interval
        self.full_interval = full_interval
        self.thaw_every = max(1, thaw_every)
        self._handle: asyncio.TimerHandle | None = None
        self._next_full = 0.0
        self.young_runs = 0
        self.full_runs = 0
        self.thaws = 0

    def start(self) -> None:
        global _pacers
        _pacers += 1
        if _pacers == 1:
            gc.collect()
            gc.freeze()  # what the process has built by now lives as long as it does
            gc.disable()
        self._next_full = time.monotonic() + self.full_interval
        self._schedule()

    def stop(self) -> None:
        global _pacers
        if self._handle is None:
            return
        self._handle.cancel()
        self._handle = None
        _pacers -= 1
        if _pacers == 0:
            gc.unfreeze()
            gc.enable()

    def _schedule(self) -> None:
        self._handle = asyncio.get_running_loop().call_later(self.young_interval, self._tick)

    def _tick(self) -> None:
        now = time.monotonic()
        if now >= self._next_full:
            self._full()
            self._next_full = time.monotonic() + self.full_interval
        else:
            gc.collect(1)
            self.young_runs += 1
        self._schedule()

    def _full(self) -> None:
        started = time.perf_counter()
        self.full_runs += 1
        thaw = self.full_runs % self.thaw_every == 0
        if thaw:
            gc.unfreeze()
            self.thaws += 1
        gc.collect(2)
        gc.freeze()
        log.info("%s garbage collection: %.1f ms (%d objects frozen)", "whole-heap" if thaw else "full",
                 1000 * (time.perf_counter() - started), gc.get_freeze_count())
