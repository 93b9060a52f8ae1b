"""app.gc_policy on the real collector of this process (installed, then handed back)."""

from __future__ import annotations

import asyncio
import gc
import sys
import weakref
from collections.abc import Iterator

import pytest

from app.gc_policy import FULL_AFTER_MIDDLE, MIDDLE_AFTER_YOUNG, OBJECTS_PER_CONNECTION, GcPolicy


class Node:
    """A reference cycle's member (a closed connection's objects refer to each other like this)."""

    def __init__(self) -> None:
        self.other: object = self


def _tracked(obj: object) -> bool:
    """Whether a collection would look at `obj` (frozen objects are in no generation)."""
    return any(o is obj for o in gc.get_objects())


def _grow(policy: GcPolicy) -> list[Node]:
    """New objects until the process's allocated memory blocks have grown past the policy's
    growth share, made with automatic collections off (they would hand the set back while the
    objects are made, before the test looks)."""
    gc.disable()
    try:
        blocks = sys.getallocatedblocks()
        target = int(blocks + 1.1 * max(policy.growth_floor, policy.growth_share * blocks))
        grown: list[Node] = []
        while sys.getallocatedblocks() < target:
            grown.extend(Node() for _ in range(10_000))
        return grown
    finally:
        gc.enable()


@pytest.fixture
def policy(request: pytest.FixtureRequest) -> Iterator[GcPolicy]:
    share = getattr(request, "param", "default")
    # "eager": reported garbage of half the set hands it back, however small the process; either
    # way, growth is counted without the floor (a process as small as this one's heap)
    p = GcPolicy(reclaim_share=0.5, reclaim_floor=0, growth_floor=0) if share == "eager" else GcPolicy(growth_floor=0)
    p.install()
    try:
        yield p
    finally:
        p.uninstall()


def test_what_start_up_made_is_frozen_and_handed_back_on_uninstall() -> None:
    before = Node()
    thresholds = gc.get_threshold()
    p = GcPolicy()
    p.install()
    try:
        assert gc.get_freeze_count() > 0
        assert not _tracked(before)
        assert gc.get_threshold() == (thresholds[0], min(thresholds[1], MIDDLE_AFTER_YOUNG),
                                      min(thresholds[2], FULL_AFTER_MIDDLE))
    finally:
        p.uninstall()
    assert gc.get_freeze_count() == 0
    assert _tracked(before)
    assert gc.get_threshold() == thresholds


def test_survivors_of_a_full_collection_are_frozen_and_garbage_made_since_is_collected(policy: GcPolicy) -> None:
    alive = Node()
    garbage = Node()
    gone = weakref.ref(garbage)
    del garbage
    assert _tracked(alive)  # made after install: young
    gc.collect()
    assert gone() is None  # cyclic garbage that was never frozen: collected as usual
    assert not _tracked(alive)  # survived a full collection: the next ones skip it


def test_survivors_of_young_collections_wait_for_the_next_full_one(policy: GcPolicy) -> None:
    alive = Node()
    garbage = Node()
    gone = weakref.ref(garbage)
    del garbage
    gc.collect(1)
    assert gone() is None
    assert _tracked(alive)  # promoted, not frozen: the next full collection looks at it once
    gc.collect()
    assert not _tracked(alive)


def test_frozen_objects_that_die_by_reference_count_go_at_once(policy: GcPolicy) -> None:
    lone = [object()]  # no cycle (a list takes no weakref: count the frozen set instead)
    gc.collect()
    assert not _tracked(lone)
    frozen = gc.get_freeze_count()
    del lone
    assert gc.get_freeze_count() == frozen - 1


def test_frozen_cyclic_garbage_is_reclaimed_once_memory_grew_by_the_share(policy: GcPolicy) -> None:
    cycle = Node()
    gone = weakref.ref(cycle)
    gc.collect()  # alive: frozen
    del cycle  # now frozen cyclic garbage, which a collection skips, and nobody reported it
    assert gone() is not None
    grown = _grow(policy)
    gc.collect()  # grown past the share since the set was whole: handed back for the next full collection
    gc.collect()  # which walks everything
    assert gone() is None
    assert policy.counts.reclaims_by_cause == {"ended": 0, "growth": 1}
    assert policy.counts.frozen_after_reclaim == gc.get_freeze_count()
    assert grown


def test_below_the_share_frozen_garbage_waits(policy: GcPolicy) -> None:
    cycle = Node()
    gone = weakref.ref(cycle)
    gc.collect()
    del cycle
    gc.collect()
    gc.collect()
    assert gone() is not None  # one small cycle is far from a quarter of this process's heap
    assert policy.counts.reclaims == 0


def test_growth_past_the_share_but_under_the_floor_waits() -> None:
    # Caches filling in a small process (the feeds' relayed changes) are growth, not garbage.
    p = GcPolicy(growth_floor=10 * sys.getallocatedblocks())
    p.install()
    try:
        cycle = Node()
        gone = weakref.ref(cycle)
        gc.collect()
        del cycle
        grown = _grow(GcPolicy(growth_floor=0))  # past the share (it doubles the heap), not the floor
        gc.collect()
        gc.collect()
        assert gone() is not None and p.counts.reclaims == 0
        assert grown
    finally:
        p.uninstall()


def test_traffic_frozen_in_flight_that_dies_by_reference_count_never_hands_the_set_back(policy: GcPolicy) -> None:
    # What a serving process has in flight at each full collection (queued frames, requests) is
    # frozen with it, and then dies by reference count. Counted as growth, twice the heap of it
    # would have meant eight whole-heap walks (the fan-out ramp's 150 ms stalls, issue 14).
    batch = sys.getallocatedblocks() // 20
    frozen_anew = 0
    for _ in range(40):
        in_flight = [[n] for n in range(batch // 2)]  # no cycles: a list and its one item each
        gc.collect()
        frozen_anew += len(in_flight)
        del in_flight
    assert frozen_anew > gc.get_freeze_count()
    assert policy.counts.frozen_since >= frozen_anew
    assert policy.counts.reclaims == 0


def test_growth_that_the_connections_opened_since_explain_is_no_reason_to_walk(policy: GcPolicy) -> None:
    # A storm of new sockets is live memory, not garbage: walking the heap for it finds nothing.
    opened = [policy.opened() for _ in range(100)]
    grown = _grow(policy)  # past the growth share, unless explained
    policy.blocks_per_connection = sys.getallocatedblocks() // len(opened)  # each explains 1% of it
    gc.collect()
    assert policy.counts.reclaims == 0 and policy.counts.live == len(opened)
    policy.blocks_per_connection = 0  # the same growth, unexplained
    gc.collect()
    gc.collect()
    assert policy.counts.reclaims_by_cause == {"ended": 0, "growth": 1}
    assert grown


@pytest.mark.parametrize("policy", ["eager"], indirect=True)
def test_closed_connections_that_were_frozen_are_reclaimed_at_the_share(policy: GcPolicy) -> None:
    connection = Node()  # a closed connection's objects refer to each other
    gone = weakref.ref(connection)
    opened = policy.opened()
    gc.collect()  # it lives through a full collection: frozen
    del connection  # closed: frozen cyclic garbage, reported below
    # Reported as half the set's worth of objects (the eager share): the set is handed back.
    policy.ended(opened, objects=policy.counts.frozen_after_reclaim // 2 + 1)
    assert gone() is not None
    gc.collect()  # the whole heap
    assert gone() is None
    assert policy.counts.reclaims_by_cause == {"ended": 1, "growth": 0}
    assert policy.counts.ended == 0  # counted afresh from the set made whole


@pytest.mark.parametrize("policy", ["eager"], indirect=True)
def test_a_connection_that_closed_before_any_full_collection_is_not_counted(policy: GcPolicy) -> None:
    # Never frozen: the young collections reclaim it, as without the policy.
    connection = Node()
    gone = weakref.ref(connection)
    opened = policy.opened()
    del connection
    policy.ended(opened, objects=10 * policy.counts.frozen_after_reclaim)
    assert policy.counts.ended == 0
    gc.collect()
    assert gone() is None
    assert policy.counts.reclaims == 0


def test_below_the_share_closed_connections_wait(policy: GcPolicy) -> None:
    opened = policy.opened()
    gc.collect()
    policy.ended(opened)
    assert policy.counts.ended == OBJECTS_PER_CONNECTION
    gc.collect()
    assert policy.counts.reclaims == 0


def test_a_negative_share_is_refused() -> None:
    with pytest.raises(ValueError, match="reclaim_share"):
        GcPolicy(reclaim_share=-0.1)
    with pytest.raises(ValueError, match="growth_share"):
        GcPolicy(growth_share=-0.1)


@pytest.mark.parametrize("policy", ["eager"], indirect=True)
async def test_in_an_event_loop_the_whole_heap_collection_runs_at_the_next_turn(policy: GcPolicy) -> None:
    cycle = Node()
    gc.collect()
    await asyncio.sleep(0)  # frozen, and whatever the first collection asked for has run
    gone = weakref.ref(cycle)
    del cycle  # frozen cyclic garbage
    grown = _grow(policy)  # past the growth share at the next full collection
    reclaims = policy.counts.reclaims
    gc.collect()  # skips the frozen cycle, freezes `grown`, hands the set back
    assert gone() is not None
    await asyncio.sleep(0)  # the loop's next turn: the whole-heap collection
    assert gone() is None
    assert policy.counts.reclaims == reclaims + 1
    assert grown


def test_pauses_are_timed_per_generation_against_the_real_collector() -> None:
    from app.gc_policy import GcPauses

    pauses = GcPauses()
    pauses.install()
    try:
        full = sum(pauses.seconds[2].counts)
        gc.collect(0)
        gc.collect()
        assert sum(pauses.seconds[2].counts) == full + 1 and sum(pauses.seconds[0].counts) >= 1
        assert pauses.seconds[2].total > 0
    finally:
        pauses.uninstall()
    gc.collect()
    assert sum(pauses.seconds[2].counts) == full + 1  # no longer following
