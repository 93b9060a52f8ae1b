"""State digests through the hub and feed, on real Redis and fakeredis: the digest on
every snapshot and on every LIVE_DIGEST_EVERY-th patch equals the digest of the state a
client holds at that message (applied with `jsonpatch`), for every kind of viewer over a
randomised history; a resumed client learns its digest from a view read ahead of it; a
reset brings a fresh one; with LIVE_DIGEST_EVERY=0 no message carries one."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import jsonpatch
import msgspec
import pytest

from app.domain import digest
from app.domain.dtos import SessionInfo
from app.domain.positions import Position
from app.domain.records import SessionRecord
from app.live.broker import Broker
from app.live.hub import Hub
from app.live.outbox import Outbox
from app.live.views import Viewer
from app.storage.session_store import SessionStore
from tests.support.streams import history

MANAGER = Viewer("A", None, True)
E1 = Viewer("A", "E1", False)
E2 = Viewer("A", "E2", False)
EVERY = 3


def becomes(info: SessionInfo) -> Any:
    def transition(current: SessionRecord | None) -> SessionRecord:
        return SessionRecord(info=msgspec.structs.replace(info, account_id="A"), meta={})
    return transition


def setting(**changes: Any) -> Any:
    def transition(current: SessionRecord | None) -> SessionRecord:
        base = current.info if current else SessionInfo()
        return SessionRecord(info=msgspec.structs.replace(base, **changes), meta={})
    return transition


async def make_hub(store: SessionStore, every: int) -> Hub:
    hub = Hub(store, Broker(store.redis), max_changes=1000, replay_budget=1_000_000, check_interval=0.2,
              digest_every=every)
    await hub.start()
    return hub


@pytest.fixture
async def hub(store: SessionStore) -> AsyncIterator[Hub]:
    h = await make_hub(store, EVERY)
    yield h
    await h.stop()


class Held:
    """A client's state from the messages it reads, and every digest it was sent, checked."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.state: dict[str, Any] = {}
        self.cursor = -1
        self.checked = 0
        self.patches = 0

    async def until(self, cursor: int) -> None:
        while self.cursor < cursor:
            message = await asyncio.wait_for(self.outbox.next(), 5)
            assert message is not None
            self.apply(json.loads(message.text))

    def apply(self, msg: dict[str, Any]) -> None:
        if msg["type"] == "snapshot":
            self.state, self.cursor = msg["sessions"], msg["cursor"]
        elif msg["type"] == "patch":
            self.state, self.cursor = jsonpatch.apply_patch(self.state, msg["ops"]), msg["cursor"]
            self.patches += 1
        elif msg["type"] == "resumed":
            self.cursor = msg["cursor"]
            return
        if "digest" in msg:
            assert msg["digest"] == digest.text(digest.of_state(self.state)), msg
            self.checked += 1


async def test_every_digest_sent_matches_the_state_at_its_message(hub: Hub, store: SessionStore) -> None:
    held = {v: Held(Outbox(1_000_000)) for v in (MANAGER, E1, E2)}
    subs = {v: await hub.open(v, h.outbox, None) for v, h in held.items()}
    for h in held.values():
        await h.until(0)
        assert h.checked == 1  # the snapshot carries one
    cursor = 0
    for sid, info in history(random.Random(7), 120, ("S1", "S2", "S3", "S.4")):
        result = await store.commit("A", sid, becomes(info))
        if result.change is not None:
            cursor = result.change.cursor
    for viewer, h in held.items():
        while subs[viewer].cursor < cursor:
            await asyncio.sleep(0.01)
        # Drain what is queued: the subscriber is current at `cursor`, and so is its state.
        while (message := h.outbox.pop()) is not None:
            h.apply(json.loads(message.text))
        assert h.patches >= 2 * EVERY, viewer
        assert h.checked == 1 + h.patches // EVERY, viewer  # the snapshot's, then every third patch
        assert subs[viewer].digest_text == digest.text(digest.of_state(h.state))  # what a ping says


async def test_a_resumed_client_learns_its_digest_from_a_read_ahead(hub: Hub, store: SessionStore) -> None:
    await store.commit("A", "S1", setting(endpoint_id="E1", call_state="Ringing"))
    first = Held(Outbox(1_000_000))
    sub = await hub.open(E1, first.outbox, None)
    await first.until(1)
    epoch = sub.epoch
    await hub.close(sub)
    for n in range(4):
        await store.commit("A", "S1", setting(display_name=f"v{n}"))
    again = Held(Outbox(1_000_000))
    again.state = first.state
    resumed = await hub.open(E1, again.outbox, Position(epoch, 1))
    await again.until(5)
    assert again.patches == 4 and again.checked == 0  # a replay carries no digest...
    assert resumed.digest_text == digest.text(digest.of_state(again.state))  # ...but the server knows it
    for n in range(EVERY):
        await store.commit("A", "S1", setting(display_name=f"w{n}"))
    await again.until(5 + EVERY)
    assert again.checked == 1


async def test_a_digest_read_ahead_of_the_client_is_taken_up_when_it_gets_there(hub: Hub) -> None:
    from app.live.feed import Subscriber
    from app.live.resume import DigestBase

    sub = Subscriber(E1, Outbox(1000), "ep", 5)
    sub.learn(DigestBase("other", 9, 1))
    sub.learn(DigestBase("ep", 4, 1))
    assert sub.digest is None and sub.base is None  # another epoch, or behind: nothing learnt
    sub.learn(DigestBase("ep", 7, 42))
    assert sub.digest is None and sub.base == DigestBase("ep", 7, 42)
    sub.learn(DigestBase("ep", 5, 41))
    assert sub.digest == 41 and sub.base is None


async def test_a_reset_carries_a_fresh_digest(hub: Hub, store: SessionStore) -> None:
    box = Held(Outbox(1_000_000))
    sub = await hub.open(E1, box.outbox, None)
    await store.commit("A", "S1", setting(endpoint_id="E1"))
    await box.until(1)
    await store.redis.client.flushall()  # Redis lost everything: a new epoch
    await store.commit("A", "S9", setting(endpoint_id="E1"))
    message = await asyncio.wait_for(box.outbox.next(), 5)
    assert message is not None
    msg = json.loads(message.text)
    assert msg["reset"] is True and msg["digest"] == digest.text(digest.of_state(msg["sessions"]))
    assert sub.digest_text == msg["digest"]


async def test_without_digests_no_message_carries_one(store: SessionStore) -> None:
    hub = await make_hub(store, 0)
    try:
        box = Outbox(1_000_000)
        sub = await hub.open(MANAGER, box, None)
        for n in range(5):
            await store.commit("A", "S1", setting(display_name=f"v{n}"))
        while sub.cursor < 5:
            await asyncio.sleep(0.01)
        texts = [m.text for m in box.drain()]
        assert len(texts) == 6 and not any("digest" in t for t in texts)
        assert sub.digest is None
    finally:
        await hub.stop()


async def test_a_patch_with_its_digest_is_encoded_once_for_the_same_view(hub: Hub, store: SessionStore) -> None:
    boxes = [Outbox(1_000_000) for _ in range(4)]
    for box in boxes:
        await hub.open(MANAGER, box, None)
    for n in range(EVERY):
        await store.commit("A", "S1", setting(display_name=f"v{n}"))
    for box in boxes:
        while len(box) < 1 + EVERY:
            await asyncio.sleep(0.01)
    last = [box.drain()[-1] for box in boxes]
    assert all('"digest":' in m.text for m in last)
    assert len({id(m) for m in last}) == 1  # one Message shared by every socket of that view


def test_a_patch_with_a_digest_is_the_patch_encoded_with_it() -> None:
    from app.live import protocol

    ops = [{"op": "replace", "path": "/S1/callState", "value": "Hold"}]
    plain = protocol.patch("ep", 7, ops)
    signed = protocol.with_digest(plain, "00000000000000ff")
    assert json.loads(signed.text) == {**json.loads(plain.text), "digest": "00000000000000ff"}
    assert signed.text == protocol._encode(protocol._Patch(7, ops, "00000000000000ff")).decode()
    assert signed.event_id == plain.event_id == "ep:7"
