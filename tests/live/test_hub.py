"""Hub, feed and broker in-process, on real Redis and on fakeredis: fan-out
encodes once per class, gaps are caught up, lost tails found, resets sent."""

import asyncio
import gc
import json
from collections.abc import AsyncIterator
from typing import Any

import jsonpatch
import msgspec
import pytest
import redis.asyncio as aioredis

from app.gc_policy import OBJECTS_PER_CONNECTION, GcPolicy
from app.storage import keys
from app.domain.changes import Change
from app.live.broker import Broker, parse_publication
from app.live.hub import Draining, Hub
from app.live.outbox import Outbox
from app.live.spread import PARTS, part_of
from app.live.protocol import Message
from app.domain.positions import Position
from app.live.views import Viewer, visible_sessions
from app.domain.dtos import SessionInfo
from app.domain.records import SessionRecord
from app.storage.session_store import SessionStore
from tests.support.counting import calls_of

MANAGER = Viewer("A", None, True)
E1 = Viewer("A", "E1", False)
E2 = Viewer("A", "E2", False)


def setting(**changes: Any) -> Any:
    def transition(current: SessionRecord | None) -> SessionRecord:
        base = current.info if current else SessionInfo()
        return SessionRecord(info=msgspec.structs.replace(base, **changes), meta={})
    return transition


@pytest.fixture
async def hub(store: SessionStore) -> AsyncIterator[Hub]:
    h = Hub(store, Broker(store.redis), max_changes=1000, replay_budget=100_000, check_interval=0.2)
    await h.start()
    yield h
    await h.stop()


async def take(outbox: Outbox, timeout: float = 3.0) -> dict[str, Any]:
    message = await asyncio.wait_for(outbox.next(), timeout)
    assert message is not None
    return json.loads(message.text)  # type: ignore[no-any-return]


async def take_raw(outbox: Outbox, timeout: float = 3.0) -> Message:
    message = await asyncio.wait_for(outbox.next(), timeout)
    assert message is not None
    return message


async def expect_quiet(outbox: Outbox, wait: float = 0.3) -> None:
    await asyncio.sleep(wait)
    assert len(outbox) == 0


async def view_of(store: SessionStore, viewer: Viewer) -> dict[str, Any]:
    view = await store.view("A", viewer.endpoint_id, viewer.whole_account)
    return {k: msgspec.json.decode(v) for k, v in visible_sessions(viewer, view.sessions).items()}


async def test_one_change_is_encoded_once_per_class_and_shared(hub: Hub, store: SessionStore) -> None:
    boxes = {v: [Outbox(100_000) for _ in range(3)] for v in (MANAGER, E1, E2)}
    subs = [await hub.open(v, box, None) for v, bs in boxes.items() for box in bs]
    for bs in boxes.values():
        for box in bs:
            assert (await take(box))["type"] == "snapshot"

    await store.commit("A", "S1", setting(endpoint_id="E1", call_state="Ringing"))
    sent = [await take_raw(box) for box in boxes[MANAGER] + boxes[E1]]
    assert all(m is sent[0] for m in sent)  # managers and E1 both see it enter: one class, one encode
    assert json.loads(sent[0].text)["ops"][0]["op"] == "add"
    for box in boxes[E2]:
        await expect_quiet(box)
    assert {s.cursor for s in subs} == {1}  # E2 saw nothing, but is current at 1
    assert hub.stats.patches_encoded == 1

    await store.commit("A", "S1", setting(call_state="Connected"))
    first = await take_raw(boxes[MANAGER][0])
    rest = [await take_raw(box) for box in boxes[MANAGER][1:] + boxes[E1]]
    assert all(m is first for m in rest)
    assert hub.stats.patches_encoded == 2


async def test_a_lost_publication_is_caught_up_from_the_log(hub: Hub, store: SessionStore) -> None:
    box = Outbox(100_000)
    await hub.open(MANAGER, box, None)
    await take(box)
    broker = hub._broker
    forward = broker._on_change
    dropped: list[int] = []

    def lossy(change: Change) -> None:
        if change.cursor == 2 and not dropped:
            dropped.append(change.cursor)
            return
        forward(change)

    broker._on_change = lossy
    for state in ("Ringing", "Connected", "Hold"):
        await store.commit("A", "S1", setting(endpoint_id="E1", call_state=state))
    msgs = [await take(box) for _ in range(3)]
    assert dropped == [2] and [m["cursor"] for m in msgs] == [1, 2, 3]
    assert hub.stats.catch_ups >= 1
    state = jsonpatch.apply_patch({}, [op for m in msgs for op in m["ops"]])
    assert state == await view_of(store, MANAGER)


async def test_a_lost_last_change_is_found_by_the_position_check(hub: Hub, store: SessionStore) -> None:
    box = Outbox(100_000)
    await hub.open(E1, box, None)
    await take(box)
    hub._broker._on_change = lambda change: None  # pub/sub loses everything
    await store.commit("A", "S1", setting(endpoint_id="E1"))
    msg = await take(box, timeout=3)  # check_interval is 0.2s
    assert msg["type"] == "patch" and msg["cursor"] == 1


async def test_a_position_check_covers_the_feeds_of_its_part_of_the_interval(store: SessionStore) -> None:
    # Spread over the interval (app.live.spread), each account's feed checked in its own part.
    h = Hub(store, Broker(store.redis), max_changes=1000, replay_budget=100_000, check_interval=3600)
    await h.start()
    try:
        other = next(f"B{n}" for n in range(100) if part_of(f"B{n}", PARTS) != part_of("A", PARTS))
        mine, theirs = Outbox(100_000), Outbox(100_000)
        await h.open(MANAGER, mine, None)
        await h.open(Viewer(other, None, True), theirs, None)
        await take(mine)
        await take(theirs)
        h._broker._on_change = lambda change: None  # pub/sub loses everything
        await store.commit("A", "S1", setting(endpoint_id="E1"))
        await store.commit(other, "S1", setting(endpoint_id="E1"))
        h.check(part_of("A", PARTS), PARTS)
        assert (await take(mine))["cursor"] == 1
        await expect_quiet(theirs)  # not its part
        h.check(part_of(other, PARTS), PARTS)
        assert (await take(theirs))["cursor"] == 1
    finally:
        await h.stop()


async def test_a_gap_the_log_cannot_fill_resets_the_subscriber(hub: Hub, store: SessionStore) -> None:
    box = Outbox(100_000)
    await hub.open(MANAGER, box, None)
    await take(box)
    forward = hub._broker._on_change
    hub._broker._on_change = lambda change: None
    await store.commit("A", "S1", setting(endpoint_id="E1"))
    await store.commit("A", "S2", setting(endpoint_id="E2"))
    await store.redis.client.xtrim(keys.changes("A"), maxlen=0)
    hub._broker._on_change = forward
    await store.commit("A", "S2", setting(call_state="Hold"))
    msg = await take(box)
    assert msg["type"] == "snapshot" and msg["reset"] is True
    assert msg["sessions"] == await view_of(store, MANAGER)


async def test_a_new_epoch_resets_subscribers(hub: Hub, store: SessionStore) -> None:
    box = Outbox(100_000)
    sub = await hub.open(E1, box, None)
    old = (await take(box))["epoch"]
    await store.commit("A", "S1", setting(endpoint_id="E1"))
    await take(box)
    await store.redis.client.flushall()  # Redis lost everything
    await store.commit("A", "S9", setting(endpoint_id="E1"))
    msg = await take(box)
    assert msg["type"] == "snapshot" and msg["reset"] is True and msg["epoch"] != old
    assert list(msg["sessions"]) == ["S9"] and sub.epoch == msg["epoch"]


async def test_join_resumes_and_replays_only_what_was_missed(hub: Hub, store: SessionStore) -> None:
    await store.commit("A", "S1", setting(endpoint_id="E1", call_state="Ringing"))
    epoch = await store.epoch("A")
    await store.commit("A", "S2", setting(endpoint_id="E2"))
    await store.commit("A", "S1", setting(call_state="Connected"))
    box = Outbox(100_000)
    await hub.open(E1, box, Position(epoch, 1))
    assert await take(box) == {"type": "resumed", "epoch": epoch, "cursor": 1, "replayed": 1}
    assert (await take(box))["cursor"] == 3
    await store.commit("A", "S1", setting(call_state="Hold"))
    assert (await take(box))["cursor"] == 4


async def test_the_channel_is_held_only_while_someone_listens(hub: Hub, store: SessionStore) -> None:
    a, b = Outbox(1000), Outbox(1000)
    sa = await hub.open(MANAGER, a, None)
    sb = await hub.open(E1, b, None)
    channel = keys.live_channel("A").encode()
    assert channel in hub._broker._wanted and len(hub._feeds) == 1
    await hub.close(sa)
    assert channel in hub._broker._wanted
    await hub.close(sb)
    assert channel not in hub._broker._wanted and hub._feeds == {}
    if store.redis.topology == "single":
        assert dict(await store.redis.client.pubsub_numsub(channel))[channel] == 0
    # and again: resubscribes
    c = Outbox(1000)
    await hub.open(MANAGER, c, None)
    await take(c)
    await store.commit("A", "S1", setting(endpoint_id="E1"))
    assert (await take(c))["cursor"] == 1


async def test_a_slow_subscriber_is_conflated_and_the_others_continue(hub: Hub, store: SessionStore) -> None:
    slow, fine = Outbox(300), Outbox(100_000)
    await hub.open(MANAGER, slow, None)
    await hub.open(MANAGER, fine, None)
    state = json.loads((await take_raw(slow)).text)["sessions"]  # the snapshot; then it stops reading
    for i in range(8):
        await store.commit("A", "S1", setting(endpoint_id="E1", display_name=str(i) * 50))
    msgs = [await take(fine) for _ in range(9)]
    assert [m["cursor"] for m in msgs[1:]] == [1, 2, 3, 4, 5, 6, 7, 8]
    for _ in range(100):  # until the feed's worker has sent the conflated patch
        if slow.conflate_from is None and hub.stats.conflated:
            break
        await asyncio.sleep(0.02)
    assert slow.closing is None and len(hub._feeds["A"].subs) == 2
    received = []
    while len(slow):
        received.append(json.loads((await take_raw(slow)).text))
    assert len(received) < 8 and received[-1]["cursor"] == 8
    for m in received:
        state = jsonpatch.apply_patch(state, m["ops"])
    assert state == await view_of(store, MANAGER)
    await store.commit("A", "S1", setting(display_name="live again"))  # and it carries on live
    nxt = await take(slow)
    assert nxt["cursor"] == 9 and jsonpatch.apply_patch(state, nxt["ops"]) == await view_of(store, MANAGER)


async def test_a_queue_of_control_messages_alone_still_closes_slow(hub: Hub) -> None:
    box = Outbox(100)
    box.on_overflow = lambda: None
    from app.live import protocol
    for _ in range(20):
        box.offer(protocol.pong())
    assert box.closing is not None and box.closing.code == 3008 and box.aborted


async def test_draining_tells_every_connection_to_reconnect(hub: Hub) -> None:
    box = Outbox(1000)
    hub.track(box)
    task = asyncio.ensure_future(hub.drain(spread_ms=500, timeout=1))
    reconnect = await take(box)
    assert reconnect["type"] == "reconnect" and 0 <= reconnect["delayMs"] <= 500
    assert box.closing is not None and box.closing.code == 3001
    hub.untrack(box)
    await asyncio.wait_for(task, 1)
    with pytest.raises(Draining):
        await hub.open(MANAGER, Outbox(10), None)


async def test_draining_does_not_wait_for_a_connection_blocked_in_a_write(hub: Hub) -> None:
    stalled, fine = Outbox(1000), Outbox(1000)
    stalled.stalled = True
    hub.track(stalled)
    hub.track(fine)
    task = asyncio.ensure_future(hub.drain(spread_ms=500, timeout=5))
    assert (await take(fine))["type"] == "reconnect"
    assert stalled.closing is not None and stalled.closing.code == 3001 and stalled.aborted and len(stalled) == 0
    assert hub.teardowns.stalled_at_drain == 1
    hub.untrack(stalled)
    hub.untrack(fine)
    await asyncio.wait_for(task, 1)


async def test_each_connection_that_ends_is_told_to_the_collector_policy(store: SessionStore) -> None:
    # The process's collector policy counts a closed connection as garbage only if it was
    # frozen, i.e. a full collection ran while it was open (app.gc_policy).
    policy = GcPolicy()
    policy.install()
    try:
        h = Hub(store, Broker(store.redis), max_changes=1000, replay_budget=100_000, check_interval=60,
                lifetimes=policy)
        frozen, young = Outbox(1000), Outbox(1000)
        h.track(frozen)
        gc.collect()
        h.track(young)
        h.untrack(young)
        assert policy.counts.ended == 0
        h.untrack(frozen)
        assert policy.counts.ended == OBJECTS_PER_CONNECTION
        h.untrack(frozen)  # once
        assert policy.counts.ended == OBJECTS_PER_CONNECTION and h.connection_count == 0
        h.track(frozen)
        gc.collect()
        h.draining = True  # the process is about to exit: walking its heap for garbage would only slow that
        h.untrack(frozen)
        assert policy.counts.ended == OBJECTS_PER_CONNECTION
    finally:
        policy.uninstall()


def test_publications_parse_the_commit_script_format() -> None:
    data = b'e1\n7\n{"session_id":"S1","rev":1,"before":[false,[]],"after":[true,["E1"]],"ops":[],"session":{}}'
    change = parse_publication("A", data)
    assert (change.account_id, change.epoch, change.cursor, change.entry.session_id) == ("A", "e1", 7, "S1")


async def test_acks_measure_lag_and_an_acker_too_far_behind_is_held_then_conflated(store: SessionStore) -> None:
    from app.live.feed import Lag, Who
    from app.observability.tally import TALLY

    now = [1_000.0]  # the hub's wall clock, seconds
    h = Hub(store, Broker(store.redis), max_changes=1000, replay_budget=100_000, check_interval=60,
            conflate_lag_ms=500, clock=lambda: now[0])
    await h.start()
    try:
        box = Outbox(100_000)
        sub = await h.open(MANAGER, box, None, who=Who("c1", "u1", "E1", "websocket"))
        state = json.loads((await take_raw(box)).text)["sessions"]
        feed = h._feeds["A"]
        assert feed.lag(sub) is None  # never acked

        async def commit(name: str) -> dict[str, Any]:
            await store.commit("A", "S1", setting(endpoint_id="E1", display_name=name), arrived_ms=int(now[0] * 1000))
            return await take(box)

        first = await commit("one")
        state = jsonpatch.apply_patch(state, first["ops"])
        hist = TALLY.arrival_to_ack_seconds
        samples, total = sum(hist.counts), hist.total
        now[0] += 0.25
        h.acknowledged(sub, 1, sub.epoch)
        assert feed.lag(sub) == Lag(0, 0)
        assert sum(hist.counts) == samples + 1 and hist.total - total == pytest.approx(0.25, abs=0.002)
        h.acknowledged(sub, 7, sub.epoch)  # never sent: ignored
        h.acknowledged(sub, 1, "another-epoch")
        assert sub.acked == 1

        second = await commit("two")  # sent, not yet acknowledged
        state = jsonpatch.apply_patch(state, second["ops"])
        now[0] += 0.1
        assert feed.lag(sub) == Lag(1, 100)

        now[0] += 1.0  # the oldest unacknowledged change is now 1.1 s old: past the 500 ms bound
        await store.commit("A", "S1", setting(display_name="three"), arrived_ms=int(now[0] * 1000))
        await store.commit("A", "S1", setting(display_name="four"), arrived_ms=int(now[0] * 1000))
        await asyncio.sleep(0.3)
        assert len(box) == 0 and box.conflate_from is not None  # held: nothing more sent
        h.acknowledged(sub, 2, sub.epoch)  # it caught up with what it was sent: one conflated patch
        merged = await take(box)
        assert merged["cursor"] == 4 and len(merged["ops"]) == 1
        assert jsonpatch.apply_patch(state, merged["ops"]) == await view_of(store, MANAGER)
        assert box.conflations == 1 and [s.who for s, _ in h.connections("A")] == [sub.who]

        # Held again, and then it stops acknowledging: after 10 s the position check lets it go
        # back to the queue's own bound, and the held changes come as one patch.
        state = jsonpatch.apply_patch(state, merged["ops"])
        now[0] += 1.0
        await store.commit("A", "S1", setting(display_name="five"), arrived_ms=int(now[0] * 1000))
        await store.commit("A", "S1", setting(display_name="six"), arrived_ms=int(now[0] * 1000))
        await asyncio.sleep(0.3)
        assert len(box) == 0 and box.conflate_from is not None
        now[0] += 11.0
        feed.check()
        released = await take(box)
        assert released["cursor"] == 6
        assert jsonpatch.apply_patch(state, released["ops"]) == await view_of(store, MANAGER)
    finally:
        await h.stop()


async def test_a_conflation_sends_a_snapshot_when_that_is_smaller(hub: Hub, store: SessionStore) -> None:
    """Sessions that ended while the client read nothing: the merged patch would carry each one's
    final form and its remove; the snapshot is empty, so that is what it gets."""
    for n in range(6):
        await store.commit("A", f"S{n}", setting(endpoint_id="E1", display_name=str(n) * 300))
    box = Outbox(2_000)
    await hub.open(MANAGER, box, None)
    state = json.loads((await take_raw(box)).text)["sessions"]
    assert len(state) == 6
    for n in range(6):
        await store.commit("A", f"S{n}", setting(ended=True, call_state="Disconnected", display_name="y" * 300))
    reset = await take(box)  # read when the overflow came: the last changes may follow as patches
    assert reset["type"] == "snapshot" and reset.get("reset") is True and len(reset["sessions"]) < len(state)
    state, cursor = reset["sessions"], reset["cursor"]
    while cursor < 12:
        message = await take(box)
        assert message["type"] == "patch"
        state, cursor = jsonpatch.apply_patch(state, message["ops"]), message["cursor"]
    assert state == await view_of(store, MANAGER) == {}


async def test_resumes_of_one_account_share_one_view_read_for_their_digests(store: SessionStore,
                                                                             any_redis: aioredis.Redis) -> None:
    """Overlapping resumes take their digest bases from one whole-account read, each by the
    rule: every base equals the digest of that viewer's own view."""
    from app.domain import digest

    h = Hub(store, Broker(store.redis), max_changes=1000, replay_budget=100_000, check_interval=60, digest_every=5)
    await h.start()
    try:
        for n in range(6):
            await store.commit("A", f"S{n}", setting(endpoint_id=f"E{n % 3}", display_name=str(n)))
        since = Position((await store.position("A"))[0], 2)
        viewers = [MANAGER, *(Viewer("A", f"E{n}", False) for n in range(3)), Viewer("A", "E9", False)]
        smembers = await calls_of(any_redis, "smembers")
        subs = await asyncio.gather(*(h.open(v, Outbox(100_000), since) for v in viewers))
        if smembers is not None:  # real Redis counts: one view read for all five
            assert await calls_of(any_redis, "smembers") - smembers == 1
        for sub, viewer in zip(subs, viewers):
            assert sub.digest == digest.of_blobs(
                visible_sessions(viewer, (await store.view("A", viewer.endpoint_id, viewer.whole_account)).sessions))
    finally:
        await h.stop()


async def test_resumes_of_one_account_share_one_log_read_and_each_gets_its_own_replay(
        store: SessionStore, any_redis: aioredis.Redis) -> None:
    """Overlapping resumes of an account read the log once (from the first one's cursor); a
    resume from further on takes only the changes after its own cursor, and one from further
    back (which the shared read does not reach) reads its own. Every replay brings its viewer
    to exactly its view."""
    h = Hub(store, Broker(store.redis), max_changes=1000, replay_budget=100_000, check_interval=60)
    await h.start()
    try:
        for n in range(8):
            await store.commit("A", f"S{n}", setting(endpoint_id=f"E{n % 3}", display_name=str(n)))
        epoch = (await store.position("A"))[0]
        opens = [(MANAGER, 3), (E1, 3), (E2, 3), (MANAGER, 5), (E1, 1)]
        xrange = await calls_of(any_redis, "xrange")
        boxes = [Outbox(100_000) for _ in opens]
        subs = await asyncio.gather(*(h.open(v, box, Position(epoch, c)) for (v, c), box in zip(opens, boxes)))
        if xrange is not None:  # real Redis counts: the shared read from 3, and the one from 1 of its own
            assert await calls_of(any_redis, "xrange") - xrange == 2
        for (viewer, cursor), box, sub in zip(opens, boxes, subs):
            resumed = await take(box)
            assert resumed["type"] == "resumed" and resumed["cursor"] == cursor and sub.cursor == 8
            now = await view_of(store, viewer)
            # Each session was made by one commit (S<n> at cursor n + 1): the viewer's state at
            # `cursor` is the sessions made by then, and its replay must bring it to `now`.
            state: Any = {k: v for k, v in now.items() if int(k[1:]) < cursor}
            for _ in range(resumed["replayed"]):
                patch = await take(box)
                assert patch["type"] == "patch" and patch["cursor"] > cursor
                state = jsonpatch.apply_patch(state, patch["ops"])
            assert state == now and len(now) > 0
    finally:
        await h.stop()
