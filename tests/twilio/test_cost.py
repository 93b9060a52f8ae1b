"""What one callback costs Redis, counted on a real Redis: round trips (client
side) and commands (server side, `INFO commandstats`, which also counts the
commands a script runs). Counts, not times, so these bounds are exact."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from app.config import Settings
from app.storage import keys
from app.composition import create_app
from tests.flows import a_inbound_to_agent as a
from tests.flows import c_missed as c
from tests.flows.http import deliver
from tests.flows.model import Step
from tests.support.counting import CountingRedis

BASE = "http://testserver"


async def server_commands(redis: aioredis.Redis) -> int:
    stats = await redis.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items()
               if not k.startswith(("cmdstat_info", "cmdstat_config")))


@pytest.fixture
async def counted(clean_redis: str, settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, CountingRedis]]:
    redis = CountingRedis.connect(clean_redis)
    app = create_app(settings, redis=redis)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        # Another call first, so the scripts are loaded (a fresh server's first
        # EVALSHA is answered NOSCRIPT, then the script is loaded once).
        assert (await deliver(client, c.NO_ANSWER.steps[0])).status_code == 204
        yield client, redis
    await redis.aclose()


async def cost(client: httpx.AsyncClient, redis: CountingRedis, step: Step) -> tuple[int, int]:
    """(round trips, server commands) of delivering `step`."""
    admin = aioredis.Redis(connection_pool=redis.connection_pool)
    await admin.config_resetstat()
    before = redis.round_trips
    assert (await deliver(client, step)).status_code == 204
    return redis.round_trips - before, await server_commands(admin)


async def test_a_callback_with_its_session_in_the_url_takes_one_round_trip_once_kept(
        counted: tuple[httpx.AsyncClient, CountingRedis]) -> None:
    """A session's first callback in a process: read (marker, record, owner, links) and
    commit (state, plus new links and their dead-letter checks in the same pipeline);
    nothing else while no letters wait. It claims the owner in the read (SET NX GET: a
    single-key command, since the owner key is outside the account's Cluster slot; a lost
    claim stops the commit before anything is written). Every later one starts from the
    record that commit wrote (kept in-process): the commit alone, its script checking the
    marker, the epoch and the revision."""
    client, redis = counted
    first, *rest, last = a.FLOW.steps  # `last` is the customer's leg: no session in its URL
    # read pipeline: EXISTS marker, HMGET, SET NX GET owner (the claim) + PTTL owner, PTTL per link;
    # commit pipeline: SET NX and EXISTS per new link + SADD of the account to the sweep's list (a
    # new session) + EVALSHA (EXISTS GET-epoch GET-epoch-generation HGET HSET SADD PERSIST
    # SADD-endpoint SET-epoch SET-generation INCR XADD PUBLISH SET-marker; its INFO
    # replication is not counted). No `SCRIPT EXISTS` before the commit (redis-py's pipeline
    # sends one, a round trip of its own, whenever it holds a script)
    assert await cost(client, redis, first) == (2, 24)
    # no read, no claim, no link (all known): EVALSHA (EXISTS GET-epoch GET-epoch-generation
    # HGET HSET INCR XADD PUBLISH SET-marker)
    for step in rest:
        assert await cost(client, redis, step) == (1, 10), step
    # first a lookup of its link to find the session, then the kept commit, which ends the
    # session: it leaves the active and endpoint sets and gets its TTL
    assert await cost(client, redis, last) == (2, 14)


async def test_a_duplicate_takes_one_round_trip(counted: tuple[httpx.AsyncClient, CountingRedis]) -> None:
    """A duplicate changes nothing on the kept record, so the read answers it: EXISTS
    marker (seen), HMGET, PTTL per link (no claim: the kept commit vouches for the owner)."""
    client, redis = counted
    await deliver(client, a.FLOW.steps[0])
    assert await cost(client, redis, a.FLOW.steps[0]) == (1, 4)


async def test_a_commit_by_another_process_costs_no_extra_read(
        clean_redis: str, settings: Settings, counted: tuple[httpx.AsyncClient, CountingRedis]) -> None:
    """Another process commits to the session between two of ours: our kept commit is a
    conflict whose reply carries the record as it is now (EVALSHA: EXISTS GET GET HGET
    HMGET), and the retry commits from it: two round trips, as before the record was kept,
    and never a third."""
    client, redis = counted
    first, second, third, *_ = a.FLOW.steps
    assert await cost(client, redis, first) == (2, 24)
    rival_redis = aioredis.from_url(clean_redis)
    other = create_app(settings, redis=rival_redis)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=other), base_url=BASE) as rival:
        assert (await deliver(rival, second)).status_code == 204
    await rival_redis.aclose()
    assert await cost(client, redis, third) == (2, 6 + 10)


async def test_data_lost_since_the_kept_commit_is_read_claimed_and_linked_again(
        clean_redis: str, counted: tuple[httpx.AsyncClient, CountingRedis]) -> None:
    """Redis lost everything after our commit (a restart without persistence): the kept
    commit's epoch is not the account's any more, so nothing is written from the kept
    record ({-2}); the read claims the owner and makes the links again, as for a session
    never seen."""
    client, redis = counted
    first, second, *_ = a.FLOW.steps
    await deliver(client, first)
    admin = aioredis.Redis(connection_pool=redis.connection_pool)
    await admin.flushall()
    before = redis.round_trips
    assert (await deliver(client, second)).status_code == 204
    assert redis.round_trips - before == 3  # the refused kept commit, the read, the commit
    account = second.query["accountId"]
    assert await admin.get(keys.owner(a.FLOW.session)) == account.encode()
    for sid in (a.C, a.P):  # the leg and its parent
        assert await admin.get(keys.call_link(sid)) == f"{account} {a.FLOW.session}".encode()
    assert int(await admin.hget(keys.session(account, a.FLOW.session), "rev")) == 1  # the first was lost


def slot_tag(key: str) -> str:
    """The part of a key Redis Cluster hashes: the first {...} that is not empty."""
    start = key.find("{")
    end = key.find("}", start + 1)
    return key[start + 1:end] if start >= 0 and end > start + 1 else key


async def test_every_script_touches_one_cluster_slot(clean_redis: str, settings: Settings) -> None:
    """Each flow, delivered whole (with dead letters, links and replays): every
    script's keys share one hash tag, so each would run on Redis Cluster."""
    from tests.flows import FLOWS

    redis = CountingRedis.connect(clean_redis)
    app = create_app(settings, redis=redis)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        for flow in FLOWS.values():
            for step in reversed(flow.steps):  # reversed: dead letters first, then their replay
                assert (await deliver(client, step)).status_code == 204
    await redis.aclose()
    assert len(redis.scripts) > 20
    for script_keys in redis.scripts:
        assert len({slot_tag(k) for k in script_keys}) == 1, script_keys
