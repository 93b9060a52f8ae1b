"""Resumes from what the account's feed relayed (app.live.feed `recent`, `digest_at`): a feed
left without subscribers lingers (LIVE_FEED_LINGER_SECONDS), following its account, so that a
reconnect storm within what it remembers costs no Redis command at all, each client getting
exactly the replay and the digest it would have got from a read; and whatever it does not hold
(a gap it saw on the channel, a position from before it) is read as before."""

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import jsonpatch
import msgspec
import pytest
import redis.asyncio as aioredis

from app.domain import digest
from app.domain.changes import Change
from app.domain.positions import Position
from app.live.broker import Broker
from app.live.feed import Subscriber
from app.live.hub import Hub
from app.live.outbox import Outbox
from app.live.views import Viewer, visible_sessions
from app.storage import keys
from app.storage.session_store import SessionStore
from tests.live.test_hub import E1, MANAGER, setting, take, view_of
from tests.support.counting import calls_of

VIEWERS = [MANAGER, *(Viewer("A", f"E{n}", False) for n in range(3)), Viewer("A", "E9", False)]
NOT_COUNTED = {"info", "ping"}  # INFO is how the calls are counted


async def _allcalls_of(r: aioredis.Redis) -> int | None:
    """Every command Redis ran (those inside scripts too), INFO and PING aside; None on fakeredis."""
    try:
        stats = await r.info("commandstats")
    except Exception:  # noqa: BLE001 - fakeredis has no commandstats
        return None
    return sum(int(v["calls"]) for k, v in stats.items() if k.removeprefix("cmdstat_") not in NOT_COUNTED)


async def until(condition: Callable[[], bool]) -> None:
    """Wait (on the loop, bounded) for something another task does."""
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.005)


@pytest.fixture
async def lingering(store: SessionStore) -> AsyncIterator[Hub]:
    h = Hub(store, Broker(store.redis), max_changes=1000, replay_budget=100_000, check_interval=60,
            digest_every=3, linger_seconds=60)
    await h.start()
    yield h
    await h.stop()


async def _state_of(store: SessionStore, viewer: Viewer) -> tuple[dict[str, Any], int]:
    view = await store.view("A", viewer.endpoint_id, viewer.whole_account)
    return {k: msgspec.json.decode(v) for k, v in visible_sessions(viewer, view.sessions).items()}, view.cursor


async def _connect(hub: Hub, viewer: Viewer) -> tuple[Subscriber, Outbox, dict[str, Any]]:
    box = Outbox(100_000)
    sub = await hub.open(viewer, box, None)
    snapshot = await take(box)
    assert snapshot["type"] == "snapshot"
    return sub, box, snapshot["sessions"]


async def _resumed(box: Outbox, state: dict[str, Any], cursor: int) -> tuple[dict[str, Any], int]:
    """Apply a `resumed` replay to a client's state at `cursor`."""
    resumed = await take(box)
    assert resumed["type"] == "resumed" and resumed["cursor"] == cursor
    for _ in range(resumed["replayed"]):
        patch = await take(box)
        assert patch["type"] == "patch" and patch["cursor"] > cursor  # in order, no repeat
        state, cursor = jsonpatch.apply_patch(state, patch["ops"]), patch["cursor"]
    return state, cursor


async def test_a_resume_storm_within_what_the_feed_relayed_costs_no_redis_command(
        lingering: Hub, store: SessionStore, any_redis: aioredis.Redis) -> None:
    hub = lingering
    for n in range(6):
        await store.commit("A", f"S{n}", setting(endpoint_id=f"E{n % 3}", display_name=str(n)))
    clients = [await _connect(hub, v) for v in VIEWERS]
    await store.commit("A", "S0", setting(call_state="Ringing"))  # the feed relays one: it knows where it is
    states = []
    for sub, box, state in clients:
        if sub.viewer.whole_account or sub.viewer.endpoint_id == "E0":
            state = jsonpatch.apply_patch(state, (await take(box))["ops"])
        states.append((state, sub.cursor))
    epoch = (await store.position("A"))[0]
    for sub, _, _ in clients:
        await hub.close(sub)
    feed = hub._feeds["A"]  # lingering: still subscribed, following the account
    assert not feed.subs and keys.live_channel("A").encode() in hub._broker._wanted

    # Away: changes each viewer sees some of (a session moves from E1 to E2, one ends).
    await store.commit("A", "S1", setting(endpoint_id="E2", call_state="Connected"))
    await store.commit("A", "S2", setting(display_name="two"))
    await store.commit("A", "S3", setting(ended=True))
    await store.commit("A", "S6", setting(endpoint_id="E1"))
    head = (await store.position("A"))[1]
    await until(lambda: feed.head == head)

    before = await _allcalls_of(any_redis)
    boxes = [Outbox(100_000) for _ in VIEWERS]
    subs = await asyncio.gather(*(hub.open(v, box, Position(epoch, cursor))
                                  for v, box, (_, cursor) in zip(VIEWERS, boxes, states)))
    if before is not None:  # real Redis counts: not one command for the whole storm
        assert await _allcalls_of(any_redis) == before
    assert hub.stats.resumed_from_memory == len(VIEWERS)
    for viewer, box, sub, (state, cursor) in zip(VIEWERS, boxes, subs, states):
        now, at = await _state_of(store, viewer)
        state, _ = await _resumed(box, state, cursor)
        assert state == now and sub.cursor == at == head
        assert sub.digest == digest.of_state(now)  # exact, read from no store

    # And live again from there: the next change once, at the next cursor.
    await store.commit("A", "S0", setting(call_state="Hold"))
    for viewer, box, sub in zip(VIEWERS, boxes, subs):
        if viewer.whole_account or viewer.endpoint_id == "E0":
            patch = await take(box)
            assert patch["cursor"] == head + 1
        assert sub.cursor == head + 1
        assert sub.digest == digest.of_state((await _state_of(store, viewer))[0])


async def test_a_gap_on_the_channel_is_not_replayed_from_memory(lingering: Hub, store: SessionStore,
                                                                any_redis: aioredis.Redis) -> None:
    """A change pub/sub lost while nobody listened: the feed's memory starts again after it, so
    a resume from before it reads the log (and is exact); one from after it needs no read."""
    hub = lingering
    sub, box, state = await _connect(hub, MANAGER)
    await store.commit("A", "S1", setting(endpoint_id="E1", call_state="Ringing"))
    state = jsonpatch.apply_patch(state, (await take(box))["ops"])
    await hub.close(sub)
    feed = hub._feeds["A"]
    broker = hub._broker
    forward = broker._on_change

    def lossy(change: Change) -> None:
        if change.cursor != 3:
            forward(change)

    broker._on_change = lossy
    for n, call in enumerate(("Connected", "Hold", "Connected", "Ended")):
        await store.commit("A", f"S{n % 2 + 1}", setting(endpoint_id="E1", call_state=call))
    epoch, head = await store.position("A")
    await until(lambda: feed.head == head)
    assert feed.recent(epoch, 1, 1000) is None and feed.recent(epoch, 3, 1000) is not None

    xrange = await calls_of(any_redis, "xrange")
    again = Outbox(100_000)
    resumed = await hub.open(MANAGER, again, Position(epoch, 1))
    if xrange is not None:
        assert await calls_of(any_redis, "xrange") == xrange + 1
    state, cursor = await _resumed(again, state, 1)
    assert state == await view_of(store, MANAGER) and cursor == resumed.cursor == head
    assert hub.stats.resumed_from_memory == 0


async def test_a_resume_from_another_epoch_or_ahead_is_not_served_from_memory(lingering: Hub,
                                                                              store: SessionStore) -> None:
    hub = lingering
    sub, box, _ = await _connect(hub, E1)
    await store.commit("A", "S1", setting(endpoint_id="E1"))
    await take(box)
    epoch, head = await store.position("A")
    feed = hub._feeds["A"]
    await until(lambda: feed.head == head)
    await hub.close(sub)
    assert feed.recent(epoch, head - 1, 1000) is not None
    hub._on_subscribed("A")  # resubscribed (the broker reconnected) while nobody listened: forgets
    assert feed.recent(epoch, head - 1, 1000) is None and feed.recent(epoch, head, 1000) is not None
    assert feed.recent("not-the-epoch", head, 1000) is None
    assert feed.recent(epoch, head + 1, 1000) is None  # ahead of anything relayed: the store decides
    other = Outbox(100_000)
    await hub.open(E1, other, Position("not-the-epoch", head))
    assert (await take(other))["type"] == "snapshot"  # reset, as before
    ahead = Outbox(100_000)
    await hub.open(E1, ahead, Position(epoch, head + 5))
    assert (await take(ahead))["type"] == "snapshot"
    assert hub.stats.resumed_from_memory == 0


async def test_a_lingering_feed_stops_after_its_linger_and_a_return_keeps_it(store: SessionStore) -> None:
    hub = Hub(store, Broker(store.redis), max_changes=1000, replay_budget=100_000, check_interval=60,
              linger_seconds=0.05)
    await hub.start()
    try:
        channel = keys.live_channel("A").encode()
        sub, _, _ = await _connect(hub, MANAGER)
        feed = hub._feeds["A"]
        await hub.close(sub)
        assert hub._feeds["A"] is feed and channel in hub._broker._wanted  # lingering
        back, box, _ = await _connect(hub, MANAGER)  # a return within the linger keeps the feed
        assert hub._feeds["A"] is feed and "A" not in hub._lingering
        await store.commit("A", "S1", setting(endpoint_id="E1"))
        assert (await take(box))["cursor"] == 1
        assert feed.recent(feed.epoch, 0, 1000) is not None  # relayed, remembered
        await hub.close(back)
        await until(lambda: "A" not in hub._feeds and not hub._stopping)
        assert channel not in hub._broker._wanted
        # Stopped, it holds nothing: the feed may wait as frozen garbage (app.gc_policy), its memory not.
        assert feed.recent(feed.epoch, 0, 1000) is None
        again, box, _ = await _connect(hub, MANAGER)  # and a later one subscribes again
        await store.commit("A", "S1", setting(endpoint_id="E2"))
        assert (await take(box))["cursor"] == 2 and hub._feeds["A"] is not feed
        await hub.close(again)
    finally:
        await hub.stop()
