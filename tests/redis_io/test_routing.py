"""Where each command goes in a cluster (pure): units, slots, redirections."""

from __future__ import annotations

import pytest
from redis.crc import key_slot
from redis.exceptions import AskError, ClusterDownError, MovedError, ResponseError, TryAgainError

from app.storage import keys
from app.redis_io.routing import Redirect, RoutingError, command_slot, redirect_of, slot_table, units


def test_a_script_is_routed_by_its_declared_keys() -> None:
    script = ("EVALSHA", "abc", 2, keys.seq("A"), keys.epoch("A"), "arg-not-a-key")
    assert command_slot(script) == key_slot(keys.seq("A").encode())
    assert command_slot(("EVALSHA", "abc", 0, "x")) is None


def test_every_account_key_shares_the_account_slot() -> None:
    names = [keys.session("A", "S1"), keys.active("A"), keys.endpoint("A", "E1"), keys.seq("A"), keys.epoch("A"),
             keys.epoch_generation("A"), keys.changes("A"), keys.dedupe("A", "k"), keys.live_channel("A"),
             keys.wait_probe("A")]
    assert len({key_slot(k.encode()) for k in names}) == 1


def test_keys_in_different_slots_in_one_command_are_refused_before_sending() -> None:
    with pytest.raises(RoutingError):
        command_slot(("MGET", keys.owner("S1"), keys.owner("S2-other")))
    with pytest.raises(RoutingError):
        command_slot(("FLUSHALL",))  # no rule: never guessed


def test_keyless_commands_travel_with_the_command_before_them() -> None:
    batch = [("SET", keys.call_link("CA1"), "A S", "NX"), ("EVALSHA", "x", 1, keys.seq("A")), ("WAIT", 1, 100),
             ("GET", keys.owner("S1"))]
    cut = units(batch)
    assert [(u.start, len(u.commands)) for u in cut] == [(0, 1), (1, 2), (3, 1)]
    assert cut[1].commands[1] == ("WAIT", 1, 100) and cut[1].slot == key_slot(keys.seq("A").encode())


def test_redirections_are_read_from_redis_py_reply_errors() -> None:
    assert redirect_of(MovedError("3999 127.0.0.1:7001")) == Redirect("moved", 3999, "127.0.0.1:7001")
    assert redirect_of(AskError("12 127.0.0.1:7002")) == Redirect("ask", 12, "127.0.0.1:7002")
    assert redirect_of(TryAgainError("Multiple keys request during rehashing of slot")) == Redirect("tryagain")
    assert redirect_of(ClusterDownError("The cluster is down")) == Redirect("down")
    assert redirect_of(ResponseError("ERR other")) is None and redirect_of(b"OK") is None


def test_slot_table_from_cluster_slots() -> None:
    reply = [[0, 5460, [b"", 7000, b"id0"]], [5461, 16383, [b"10.0.0.2", 7001, b"id1"], [b"10.0.0.3", 7002, b"r"]]]
    table = slot_table(reply, default_host="127.0.0.1")
    assert table[0] == table[5460] == "127.0.0.1:7000" and table[5461] == table[16383] == "10.0.0.2:7001"
