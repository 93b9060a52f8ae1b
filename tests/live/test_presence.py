"""This process's part in presence (app.live.presence): two "processes" (each its own
Presence, broker and Redis connection) on one embedded Redis, their clocks driven by
the test and their ticks run by it. A process that dies simply stops ticking."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import pytest

from app.auth.tokens import Principal
from app.domain.visibility import Viewer
from app.live.broker import Broker
from app.live.outbox import Outbox
from app.live.presence import Lease, Presence
from app.live.spread import PARTS, part_of
from app.redis_io import wrap
from app.storage import keys
from app.storage.presence_store import PresenceStore

LEASE, INTERVAL = 10.0, 2.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_714_557_600.0

    def __call__(self) -> float:
        return self.now


class Process:
    def __init__(self, server: fakeredis.FakeServer, clock: Clock) -> None:
        self.redis = wrap(fakeredis.FakeAsyncRedis(server=server))
        self.broker = Broker(self.redis)
        self.presence = Presence(PresenceStore(self.redis), lease_seconds=LEASE, interval_seconds=INTERVAL, clock=clock)
        self.broker.on_presence = self.presence.on_publication

    async def start(self) -> None:
        await self.broker.start(lambda change: None, lambda account: None)
        await self.broker.subscribe("A1")  # what the hub does for a live connection of the account

    async def stop(self) -> None:
        await self.broker.stop()
        await self.redis.aclose()


@pytest.fixture
async def world() -> AsyncIterator[tuple[Process, Process, Clock]]:
    server, clock = fakeredis.FakeServer(), Clock()
    a, b = Process(server, clock), Process(server, clock)
    await a.start()
    await b.start()
    yield a, b, clock
    await a.stop()
    await b.stop()


def principal(user: str, endpoint: str | None, *roles: str) -> Principal:
    return Principal(user, "A1", endpoint, frozenset(("User", *roles)), user.title(), 2e9)


async def heard(outbox: Outbox) -> dict[str, Any]:
    """The next presence message queued on the outbox."""
    async with asyncio.timeout(10):
        while not len(outbox):
            await outbox.wait()
    message = outbox.pop()
    assert message is not None and message.kind == "presence"
    result: dict[str, Any] = json.loads(message.text)
    return result


def names(entries: list[dict[str, Any]]) -> list[str]:
    return [e["endpointId"] for e in entries]


async def watching(process: Process, viewer: Viewer) -> Outbox:
    outbox = Outbox(1 << 20)
    await process.presence.watch(viewer, outbox)
    return outbox


MANAGER = Viewer("A1", None, True)


async def nothing_else(manager: Outbox, via: Process) -> None:
    """Nothing was sent before a marker join published now (one channel keeps its order)."""
    await via.presence.arrive(principal("zed", "EZ"))
    assert (await heard(manager))["joined"]["endpointId"] == "EZ"


async def test_a_manager_gets_the_list_then_each_join_and_leave_from_any_process(
        world: tuple[Process, Process, Clock]) -> None:
    a, b, _ = world
    await a.presence.arrive(principal("alice", "E1"))
    manager = await watching(b, MANAGER)
    assert await heard(manager) == {"type": "presence", "version": 1, "present": [
        {"endpointId": "E1", "userId": "alice", "name": "Alice", "since": "2024-05-01T10:00:00.000Z"}]}
    bob = await a.presence.arrive(principal("bob", "E2"))
    assert bob is not None
    joined = await heard(manager)
    assert joined["version"] == 2 and joined["joined"]["endpointId"] == "E2"
    await a.presence.depart(bob)  # bob's connection ended: its lease leaves in a's next tick
    await a.presence.tick()
    left = await heard(manager)
    assert left["version"] == 3 and left["left"] == joined["joined"]


async def test_a_reconnect_before_the_next_tick_takes_the_lease_over_and_nobody_hears_a_leave(
        world: tuple[Process, Process, Clock]) -> None:
    a, b, clock = world
    first = await a.presence.arrive(principal("alice", "E1"))
    manager = await watching(b, MANAGER)
    assert names((await heard(manager))["present"]) == ["E1"]
    assert first is not None
    await a.presence.depart(first)
    clock.now += 1
    again = await a.presence.arrive(principal("alice", "E1"))  # the same endpoint and holder reconnects
    assert again == first  # the same lease: its `since` and connection id, no write
    await a.presence.tick()
    await nothing_else(manager, a)  # no leave, no join of E1 in between
    roster = await b.presence.roster(MANAGER)
    assert [(e.endpoint_id, e.connections) for e in roster.entries] == [("E1", 1), ("EZ", 1)]
    assert a.presence.lease_count == 2


async def test_an_ended_lease_stays_through_its_grace_renewed_then_leaves(world: tuple[Process, Process, Clock]) -> None:
    """PRESENCE_LEAVE_GRACE_SECONDS: a reconnect after a tick (within the grace) still takes the
    lease over; once the grace is over, the next tick leaves it."""
    a, b, clock = world
    a.presence.leave_grace_seconds = 5.0
    first = await a.presence.arrive(principal("alice", "E1"))
    manager = await watching(b, MANAGER)
    assert names((await heard(manager))["present"]) == ["E1"] and first is not None
    await a.presence.depart(first)
    for _ in range(2):  # ticks within the grace renew the ended lease: no leave
        clock.now += INTERVAL
        await a.presence.tick()
    assert [e.endpoint_id for e in (await b.presence.roster(MANAGER)).entries] == ["E1"]
    again = await a.presence.arrive(principal("alice", "E1"))  # 4 s after: taken over
    assert again == first
    await a.presence.depart(first)
    clock.now += 4.9
    await a.presence.tick()
    await nothing_else(manager, a)  # still in its grace: no leave yet
    clock.now += 0.1  # the grace is over
    await a.presence.tick()
    left = await heard(manager)
    assert left["left"]["endpointId"] == "E1"
    assert [e.endpoint_id for e in (await b.presence.roster(MANAGER)).entries] == ["EZ"]
    assert a.presence.lease_count == 1  # EZ's


async def test_an_ended_lease_is_not_taken_over_by_another_holder_and_leaves_at_the_tick(
        world: tuple[Process, Process, Clock]) -> None:
    a, b, _ = world
    alice = await a.presence.arrive(principal("alice", "E1"))
    manager = await watching(b, MANAGER)
    assert names((await heard(manager))["present"]) == ["E1"]
    assert alice is not None
    await a.presence.depart(alice)
    other = await a.presence.arrive(principal("mallory", "E1"))  # the endpoint, but another user
    assert other is not None and other.connection_id != alice.connection_id
    await a.presence.tick()
    roster = await b.presence.roster(MANAGER)
    assert [(e.endpoint_id, e.user_id, e.connections) for e in roster.entries] == [("E1", "alice", 1)]
    await nothing_else(manager, a)  # E1 stayed present throughout (one live connection): no leave


async def test_an_agent_watching_hears_of_itself_only_and_a_user_without_endpoint_holds_no_lease(
        world: tuple[Process, Process, Clock]) -> None:
    a, b, _ = world
    assert await a.presence.arrive(principal("carol", None, "Manager")) is None
    agent = await watching(b, Viewer("A1", "E1", False))
    assert (await heard(agent))["present"] == []
    await a.presence.arrive(principal("bob", "E2"))
    await a.presence.arrive(principal("alice", "E1"))
    message = await heard(agent)  # bob's join is not for it; alice's is
    assert message["version"] == 2 and message["joined"]["endpointId"] == "E1"
    assert names((await heard(await watching(b, MANAGER)))["present"]) == ["E1", "E2"]


async def test_a_killed_processes_endpoints_leave_once_its_leases_run_out_and_another_process_sweeps(
        world: tuple[Process, Process, Clock]) -> None:
    a, b, clock = world
    await a.presence.arrive(principal("alice", "E1"))
    await b.presence.arrive(principal("bob", "E2"))
    manager = await watching(b, MANAGER)
    assert names((await heard(manager))["present"]) == ["E1", "E2"]
    # a is killed now: it never ticks again. b ticks every interval.
    for _ in range(int(LEASE / INTERVAL) - 1):
        clock.now += INTERVAL
        await b.presence.tick()
    await nothing_else(manager, b)  # within the lease: still present
    clock.now += INTERVAL  # a's lease ran out; b's own were renewed at every tick
    await b.presence.tick()
    assert (await heard(manager))["left"]["endpointId"] == "E1"
    assert [e.endpoint_id for e in (await b.presence.roster(MANAGER)).entries] == ["E2", "EZ"]


async def test_renewals_keep_a_live_process_present_through_many_leases(world: tuple[Process, Process, Clock]) -> None:
    a, b, clock = world
    await a.presence.arrive(principal("alice", "E1"))
    manager = await watching(b, MANAGER)
    assert names((await heard(manager))["present"]) == ["E1"]
    for _ in range(int(5 * LEASE / INTERVAL)):
        clock.now += INTERVAL
        await a.presence.tick()
        await b.presence.tick()
    await nothing_else(manager, b)
    assert [e.endpoint_id for e in (await b.presence.roster(MANAGER)).entries] == ["E1", "EZ"]


async def test_a_process_paused_past_its_lease_joins_again_at_its_next_tick(
        world: tuple[Process, Process, Clock]) -> None:
    a, b, clock = world
    await a.presence.arrive(principal("alice", "E1"))
    manager = await watching(b, MANAGER)
    assert names((await heard(manager))["present"]) == ["E1"]
    clock.now += LEASE + INTERVAL
    await b.presence.tick()
    assert (await heard(manager))["left"]["endpointId"] == "E1"
    await a.presence.tick()  # a wakes up: its connection is still open
    assert (await heard(manager))["joined"]["endpointId"] == "E1"


async def test_a_watcher_that_missed_a_change_gets_the_whole_list_again(world: tuple[Process, Process, Clock]) -> None:
    a, b, _ = world
    manager = await watching(b, MANAGER)
    assert (await heard(manager))["present"] == []
    await b.broker.unsubscribe("A1")  # pub/sub loses what is published meanwhile
    await a.presence.arrive(principal("alice", "E1"))
    await b.broker.subscribe("A1")
    await a.presence.arrive(principal("bob", "E2"))  # version 2 after 0: a gap
    again = await heard(manager)
    assert again["version"] == 2 and names(again["present"]) == ["E1", "E2"]


async def test_a_lost_last_change_is_found_by_the_ticks(world: tuple[Process, Process, Clock]) -> None:
    a, b, _ = world
    manager = await watching(b, MANAGER)
    assert (await heard(manager))["present"] == []
    await b.broker.unsubscribe("A1")
    await a.presence.arrive(principal("alice", "E1"))  # nothing follows it to show the gap
    await b.broker.subscribe("A1")
    await b.presence.tick()  # reads version 1 (its publication could still be on its way)
    await b.presence.tick()  # still behind what the previous tick read: lost
    again = await heard(manager)
    assert again["version"] == 1 and names(again["present"]) == ["E1"]


async def test_a_clean_stop_leaves_at_once(world: tuple[Process, Process, Clock]) -> None:
    a, b, _ = world
    await a.presence.arrive(principal("alice", "E1"))
    await a.presence.arrive(principal("alice", "E1"))  # two connections of one endpoint
    manager = await watching(b, MANAGER)
    assert names((await heard(manager))["present"]) == ["E1"]
    await a.presence.stop()
    assert (await heard(manager))["left"]["endpointId"] == "E1"
    assert a.presence.lease_count == 0


async def test_the_ticks_of_one_interval_renew_each_account_once_in_its_own_part(
        world: tuple[Process, Process, Clock]) -> None:
    # Spread over the interval (PARTS batches), not one batch of every lease at once.
    a, _, clock = world
    others = [f"A{n}" for n in range(2, 200)]
    other = next(acc for acc in others if part_of(acc, PARTS) != part_of("A1", PARTS))
    mine = await a.presence.arrive(principal("alice", "E1"))
    theirs = await a.presence.arrive(Principal("olga", other, "E9", frozenset(("User",)), "Olga", 2e9))
    assert mine is not None and theirs is not None

    async def expiry(lease: Lease) -> float | None:
        score: float | None = await a.redis.client.zscore(keys.presence_leases(lease.account_id), lease.connection_id)
        return score

    joined = await expiry(mine), await expiry(theirs)
    clock.now += INTERVAL
    await a.presence.tick(part_of("A1", PARTS), PARTS)
    assert await expiry(mine) == joined[0] + INTERVAL * 1000  # renewed
    assert await expiry(theirs) == joined[1]  # not its part
    for part in range(PARTS):  # the rest of the interval
        if part != part_of("A1", PARTS):
            await a.presence.tick(part, PARTS)
    assert (await expiry(mine), await expiry(theirs)) == (joined[0] + INTERVAL * 1000, joined[1] + INTERVAL * 1000)
