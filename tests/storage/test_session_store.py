"""Store logic, on real Redis and on fakeredis (the embedded store)."""

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import fakeredis
import msgspec
import pytest
import redis.asyncio as aioredis

from app.storage import keys
from app.config import Settings
from app.domain.dtos import SessionInfo, SessionMemberInfo
from app.domain.records import SessionRecord
from app.storage.session_store import Link, OwnershipConflict, SessionStore, Transition

T = TypeVar("T")


def setting(**changes: object) -> Transition:
    def transition(current: SessionRecord | None) -> SessionRecord:
        info = current.info if current else SessionInfo()
        return SessionRecord(info=msgspec.structs.replace(info, **changes), meta=current.meta if current else {})
    return transition


def nothing(current: SessionRecord | None) -> None:
    """A transition that changes nothing: with `claim`, the commit only claims the session."""
    return None


async def test_commit_writes_state_indexes_cursor_and_log(store: SessionStore) -> None:
    r1 = await store.commit("A", "S1", setting(endpoint_id="E1", call_state="Ringing"), "ev1")
    assert r1.status == "applied" and r1.change and r1.change.cursor == 1
    rec = await store.get("A", "S1")
    assert rec and rec.rev == 1 and rec.info.id == "S1" and rec.info.account_id == "A"
    view = await store.view("A", "E1", whole_account=False)
    assert view.cursor == 1 and [msgspec.json.decode(s)["id"] for s in view.sessions] == ["S1"]
    assert (await store.view("A", "E2", False)).sessions == []
    assert len((await store.view("A", None, True)).sessions) == 1
    changes = await store.changes_since("A", 0)
    assert changes is not None and [c.cursor for c in changes] == [1]
    assert changes[0].entry.after.endpoints == ["E1"] and changes[0].epoch == view.epoch


async def test_idempotency_key_applies_once(store: SessionStore) -> None:
    assert (await store.commit("A", "S1", setting(destination="1"), "ev1")).status == "applied"
    assert (await store.commit("A", "S1", setting(destination="2"), "ev1")).status == "duplicate"
    rec = await store.get("A", "S1")
    assert rec and rec.info.destination == "1" and await store.cursor("A") == 1


async def test_no_change_is_not_logged(store: SessionStore) -> None:
    await store.commit("A", "S1", setting(destination="1"), "ev1")
    assert (await store.commit("A", "S1", setting(destination="1"), "ev2")).status == "unchanged"
    assert await store.cursor("A") == 1
    assert (await store.commit("A", "S1", setting(destination="3"), "ev2")).status == "duplicate"


async def test_visibility_moves_with_members_and_end(store: SessionStore) -> None:
    await store.commit("A", "S1", setting(endpoint_id="E1"))
    await store.commit("A", "S1", setting(endpoint_id="E1", members=[SessionMemberInfo(endpoint_id="E2")]))
    assert len((await store.view("A", "E2", False)).sessions) == 1
    await store.commit("A", "S1", setting(endpoint_id="E9", members=[]))
    assert (await store.view("A", "E1", False)).sessions == []
    assert (await store.view("A", "E2", False)).sessions == []
    await store.commit("A", "S1", setting(ended=True))
    assert (await store.view("A", "E9", False)).sessions == []
    assert (await store.view("A", None, True)).sessions == []
    ttl = await store.redis.client.ttl(keys.session("A", "S1"))
    assert 0 < ttl <= store._settings.ended_ttl_seconds


async def test_concurrent_commits_serialise(store: SessionStore) -> None:
    def append(n: int):  # type: ignore[no-untyped-def]
        def t(current: SessionRecord | None) -> SessionRecord:
            log = list(current.info.log or []) if current else []
            return SessionRecord(info=SessionInfo(log=[*log, {"message": str(n)}]))  # type: ignore[list-item]
        return t
    await asyncio.gather(*(store.commit("A", "S1", append(n), f"e{n}") for n in range(30)))
    rec = await store.get("A", "S1")
    assert rec and rec.rev == 30 and sorted(int(e.message) for e in rec.info.log or []) == list(range(30))
    changes = await store.changes_since("A", 0)
    assert changes is not None and [c.cursor for c in changes] == list(range(1, 31))


async def test_changes_since_reports_when_log_no_longer_reaches(store: SessionStore) -> None:
    for i in range(5):
        await store.commit("A", "S1", setting(destination=str(i)))
    tail = await store.changes_since("A", 3)
    assert tail is not None and [c.cursor for c in tail] == [4, 5]
    assert await store.changes_since("A", 5) == []
    await store.redis.client.xtrim(keys.changes("A"), maxlen=2, approximate=False)
    assert await store.changes_since("A", 1) is None
    assert [c.cursor for c in await store.changes_since("A", 3) or []] == [4, 5]


async def test_session_belongs_to_one_account(store: SessionStore) -> None:
    assert (await store.commit("A", "S1", nothing, claim=True)).status == "unchanged"  # claimed, nothing stored
    await store.commit("A", "S1", nothing, claim=True)
    with pytest.raises(OwnershipConflict):
        await store.commit("B", "S1", nothing, claim=True)
    assert await store.owners(["S1", "S2"]) == {"S1": "A", "S2": None}
    assert await store.get("A", "S1") is None


async def test_change_entry_patch_turns_old_into_new(store: SessionStore) -> None:
    import jsonpatch

    await store.commit("A", "S1", setting(endpoint_id="E1", log=[]))
    before = msgspec.to_builtins((await store.get("A", "S1")).info)  # type: ignore[union-attr]
    r = await store.commit("A", "S1", setting(endpoint_id="E1", call_state="Hold", log=[{"message": "x"}]))
    assert r.change is not None
    assert jsonpatch.apply_patch(before, r.change.entry.ops) == r.change.entry.session


async def test_epoch_is_stable_until_redis_loses_it(store: SessionStore) -> None:
    first = await store.epoch("A")
    assert await store.epoch("A") == first
    await store.redis.client.delete(keys.epoch("A"))
    assert await store.epoch("A") != first


async def test_everything_one_event_touches_shares_the_account_hash_tag(store: SessionStore) -> None:
    await store.commit("A", "S1", setting(endpoint_id="E1", members=[SessionMemberInfo(endpoint_id="E2")]), "ev1",
                       claim=True)
    await store.commit("A", "S1", setting(ended=True), "ev2")
    names = [k.decode() for k in await store.redis.client.keys("*")]
    account_keys = [k for k in names if k not in (keys.owner("S1"), keys.sweep_accounts())]
    assert len(account_keys) >= 6  # session, seq, epoch, change log, two idempotency markers
    # One Redis Cluster slot: the hash tag is the only {...} in each key.
    assert all(k.count("{") == 1 and "{a:A}" in k for k in account_keys), account_keys


async def test_commit_claims_and_links_with_the_state(store: SessionStore) -> None:
    """With `claim` and `links`, the owner and every missing link are written
    with the state, in its round trip (first writer wins); a link made while its watch key exists
    is reported, so waiting dead letters are found at no cost otherwise."""
    r = store.redis.client
    await r.set("cs:call:L1", "A S0")  # linked earlier to another session: left alone
    await r.rpush("w:L2", "a letter waits on L2")
    links = [Link("cs:call:L1", "w:L1"), Link("cs:call:L2", "w:L2"), Link("cs:conf:L3", "w:L3")]
    first = await store.commit("A", "S1", setting(endpoint_id="E1"), "ev1", claim=True, links=links, link_ttl=60)
    assert first.status == "applied" and first.woken == (1,)
    assert await store.owners(["S1"]) == {"S1": "A"}
    assert await r.mget(["cs:call:L1", "cs:call:L2", "cs:conf:L3"]) == [b"A S0", b"A S1", b"A S1"]
    assert 0 < await r.ttl("cs:call:L2") <= 60
    again = await store.commit("A", "S1", setting(destination="x"), "ev2", claim=True, links=links, link_ttl=60)
    assert again.status == "applied" and again.woken == ()  # nothing new linked: nothing to wake
    # A change that alters nothing still claims and links (a callback past a bound still names its SIDs).
    await r.delete("cs:conf:L3")
    same = await store.commit("A", "S1", setting(destination="x"), "ev3", claim=True, links=links, link_ttl=60)
    assert same.status == "unchanged" and await r.get("cs:conf:L3") == b"A S1"
    assert (await store.commit("A", "S1", setting(destination="y"), "ev3", claim=True)).status == "duplicate"


async def test_commit_into_another_accounts_session_stores_nothing(store: SessionStore) -> None:
    await store.commit("B", "S1", nothing, claim=True)
    with pytest.raises(OwnershipConflict):
        await store.commit("A", "S1", setting(endpoint_id="E1"), "ev1", claim=True,
                           links=[Link("cs:call:L1", "w:L1")], link_ttl=60)
    assert await store.get("A", "S1") is None and await store.cursor("A") == 0
    assert await store.redis.client.exists("cs:call:L1", keys.dedupe("A", "ev1")) == 0


def meanwhile(client: aioredis.Redis, settings: Settings, work: Callable[[SessionStore], Awaitable[T]]) -> T:
    """Run `work` to its end on a second store on the same Redis (its own client and event
    loop, in another thread) while this loop waits: a concurrent writer that lands exactly
    where it is called from, e.g. inside a transition, between a commit's read and its write."""
    kwargs = client.connection_pool.connection_kwargs

    async def run() -> T:
        other = (fakeredis.FakeAsyncRedis(server=kwargs["server"]) if "server" in kwargs
                 else aioredis.Redis(host=kwargs["host"], port=kwargs["port"], db=kwargs.get("db", 0)))
        try:
            return await work(SessionStore(other, settings))
        finally:
            await other.aclose()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result(timeout=30)


async def test_the_commit_claims_in_its_read_so_a_later_claim_loses(
        store: SessionStore, any_redis: aioredis.Redis, settings: Settings) -> None:
    """The read claims the session (SET NX GET, atomic) before anything is
    written: another account claiming it between the read and the commit
    loses, and the commit goes ahead for its owner."""
    rival: list[str] = []

    async def claim_for_b(other: SessionStore) -> str:
        try:
            await other.commit("B", "S1", nothing, claim=True)
        except OwnershipConflict as exc:
            return exc.owner
        return "B"

    def transition(current: SessionRecord | None) -> SessionRecord | None:
        if not rival:  # the read has run; the write has not
            rival.append(meanwhile(any_redis, settings, claim_for_b))
        return setting(endpoint_id="E1")(current)

    result = await store.commit("A", "S1", transition, "ev1", claim=True, links=[Link("cs:call:L1", "w:L1")])
    assert rival == ["A"]  # B's claim, between the read and the write, found A's
    assert result.status == "applied"
    assert await store.owners(["S1"]) == {"S1": "A"}
    with pytest.raises(OwnershipConflict):
        await store.commit("B", "S1", setting(endpoint_id="E2"), "ev2", claim=True)
    assert await store.cursor("B") == 0


async def test_a_change_between_the_read_and_the_write_is_retried_on_the_fresh_state(
        store: SessionStore, any_redis: aioredis.Redis, settings: Settings) -> None:
    """The optimistic revision check: a commit that lands between another's read and its
    write makes that write fail as a whole; it is retried with the fresh state, so
    neither change is lost and the log has each once, in order."""
    await store.commit("A", "S1", setting(endpoint_id="E1"), "ev0")
    seen: list[int] = []

    def transition(current: SessionRecord | None) -> SessionRecord | None:
        assert current is not None
        seen.append(current.rev)
        if len(seen) == 1:
            rival = meanwhile(any_redis, settings, lambda other: other.commit(
                "A", "S1", setting(call_state="Ringing"), "ev-rival"))
            assert rival.status == "applied"
        return setting(destination="x")(current)

    result = await store.commit("A", "S1", transition, "ev1")
    assert seen == [1, 2]  # the first attempt lost to the rival's commit; the retry read it
    assert result.status == "applied" and result.change is not None and result.change.cursor == 3
    rec = await store.get("A", "S1")
    assert rec and rec.rev == 3 and rec.info.call_state == "Ringing" and rec.info.destination == "x"
    changes = await store.changes_since("A", 0)
    assert changes is not None and [c.cursor for c in changes] == [1, 2, 3]
