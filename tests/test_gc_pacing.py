"""Paced garbage collection (app/gc_pacing.py): the process's real collector,
driven by the pacer's timers."""

from __future__ import annotations

import asyncio
import gc
import weakref

from app.gc_pacing import GcPacer


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    """A reference cycle nothing else points at: only the collector frees it."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


async def until(check: object, seconds: float) -> bool:
    for _ in range(int(seconds / 0.01)):
        if check():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.01)
    return False


async def test_pacing_disables_automatic_collection_and_frees_cycles_on_its_timers() -> None:
    assert gc.isenabled()
    pacer = GcPacer(young_interval=0.02, full_interval=0.3)
    pacer.start()
    try:
        assert not gc.isenabled() and gc.get_freeze_count() > 0  # startup objects are frozen
        young = cycle()
        assert young() is not None
        assert await until(lambda: young() is None, 2), "a young cycle is freed by the young timer"
        assert pacer.young_runs > 0
        a, b = Node(), Node()
        a.other, b.other = b, a
        old = weakref.ref(a)
        gc.collect(1)  # promoted to the oldest generation while in use, as a long-lived object is
        gc.collect(1)
        runs = pacer.full_runs
        del a, b  # now garbage that only a full pass can find
        young_before = pacer.young_runs
        assert await until(lambda: pacer.young_runs >= young_before + 3, 2)
        if pacer.full_runs == runs:
            assert old() is not None  # young collections leave the oldest generation alone
        assert await until(lambda: pacer.full_runs > runs, 2), "the full pass runs on its timer"
        assert old() is None
    finally:
        pacer.stop()
    assert gc.isenabled() and gc.get_freeze_count() == 0  # as before


async def test_two_pacers_in_one_process_restore_the_collector_only_when_both_stop() -> None:
    first, second = GcPacer(0.05, 60), GcPacer(0.05, 60)
    first.start()
    second.start()
    first.stop()
    assert not gc.isenabled()
    first.stop()  # a second stop changes nothing
    assert not gc.isenabled()
    second.stop()
    assert gc.isenabled() and gc.get_freeze_count() == 0


async def test_full_passes_freeze_their_survivors_and_a_thaw_frees_cycles_among_them() -> None:
    pacer = GcPacer(young_interval=0.01, full_interval=0.1, thaw_every=3)
    pacer.start()
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a
        kept = weakref.ref(a)
        assert await until(lambda: pacer.full_runs >= 1, 2)
        frozen = gc.get_freeze_count()
        assert frozen > 0
        del a, b  # garbage now, but frozen by the first full pass: only a thaw finds it
        assert await until(lambda: pacer.full_runs >= 2, 2)
        assert pacer.thaws == 0 and kept() is not None
        assert await until(lambda: pacer.thaws == 1, 2)
        assert kept() is None
    finally:
        pacer.stop()
    assert gc.isenabled() and gc.get_freeze_count() == 0
