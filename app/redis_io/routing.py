"""Where each command of a batch goes in a Redis Cluster (pure).

A batch is cut into units: a command that names a key, followed by the
keyless commands after it (`WAIT` must run on the connection that made the
write before it; `ASKING` is put in front of a redirected unit). A unit goes
to the node serving its key's slot, and is redirected as a whole. Every
command the service sends is listed in `_FIRST_KEY`, so a new one cannot be
routed by accident: an unknown command is a `RoutingError`, and so is a
command whose keys span slots (it could only fail with CROSSSLOT in
production)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from redis.crc import key_slot
from redis.exceptions import AskError, ClusterDownError, MovedError, TryAgainError

from app.redis_io.resp import Command

SLOTS = 16384


class RoutingError(ValueError):
    """A command this router cannot place (a programming error, never input)."""


# Commands with keys: where the keys are. "one": argument 1 only; "all": every
# argument from 1; "pairs": arguments 1, 3, 5 ...; "script": numkeys at 2, keys after.
_Keys = Literal["one", "all", "pairs", "script"]
_FIRST_KEY: dict[bytes, _Keys] = {
    **{name: "one" for name in (
        b"GET", b"SET", b"INCR", b"HGET", b"HMGET", b"HSET", b"HINCRBY", b"HGETALL", b"EXPIRE", b"PEXPIRE", b"TTL",
        b"PERSIST", b"PTTL", b"TYPE", b"XADD", b"XRANGE", b"XREVRANGE", b"XTRIM", b"XLEN", b"LPUSH", b"RPUSH", b"LTRIM",
        b"LREM", b"LRANGE", b"LLEN", b"SADD", b"SREM", b"SMEMBERS", b"SCARD", b"SISMEMBER", b"SPUBLISH",
    )},
    b"MGET": "all", b"EXISTS": "all", b"DEL": "all", b"UNLINK": "all", b"SSUBSCRIBE": "all",
    b"MSET": "pairs",
    b"EVAL": "script", b"EVALSHA": "script", b"EVAL_RO": "script", b"EVALSHA_RO": "script",
}
# Commands without keys that may follow a keyed one in the same unit.
KEYLESS = frozenset({b"WAIT", b"PING", b"ASKING", b"INFO", b"ECHO"})


def _name(command: Command) -> bytes:
    head = command[0]
    return (head.encode() if isinstance(head, str) else bytes(head)).upper()


def _as_bytes(arg: str | bytes | int) -> bytes:
    if isinstance(arg, bytes):
        return arg
    return arg.encode() if isinstance(arg, str) else b"%d" % arg


def command_keys(command: Command) -> list[bytes]:
    """The keys `command` names (empty for a keyless one)."""
    name = _name(command)
    how = _FIRST_KEY.get(name)
    if how is None:
        if name in KEYLESS:
            return []
        raise RoutingError(f"no routing rule for {name.decode()!r}")
    if how == "one":
        return [_as_bytes(command[1])]
    if how == "all":
        return [_as_bytes(arg) for arg in command[1:]]
    if how == "pairs":
        return [_as_bytes(arg) for arg in command[1::2]]
    count = int(command[2])
    return [_as_bytes(arg) for arg in command[3:3 + count]]


def command_slot(command: Command) -> int | None:
    """The one slot all of `command`'s keys are in; None when it has no key."""
    slots = {key_slot(key) for key in command_keys(command)}
    if len(slots) > 1:
        raise RoutingError(f"{_name(command).decode()} spans slots {sorted(slots)}: keys must share a hash tag")
    return slots.pop() if slots else None


@dataclass(slots=True)
class Unit:
    """Commands `start` .. `start + len(commands)` of a batch, sent together."""

    start: int
    commands: list[Command]
    slot: int
    ask: str | None = None  # "host:port" after an ASK redirection (one attempt)


def units(commands: Sequence[Command]) -> list[Unit]:
    """Cut a batch into units (see the module doc). A batch that starts with a
    keyless command goes to slot 0's node."""
    out: list[Unit] = []
    for index, command in enumerate(commands):
        slot = command_slot(command)
        if slot is None and out:
            out[-1].commands.append(command)
        else:
            out.append(Unit(index, [command], 0 if slot is None else slot))
    return out


@dataclass(frozen=True, slots=True)
class Redirect:
    kind: Literal["moved", "ask", "tryagain", "down"]
    slot: int = -1
    address: str = ""


def redirect_of(reply: object) -> Redirect | None:
    """MOVED / ASK / TRYAGAIN / CLUSTERDOWN (redis-py's reply error classes), else None."""
    if isinstance(reply, MovedError):  # before AskError: MovedError subclasses it
        return Redirect("moved", reply.slot_id, f"{reply.host}:{reply.port}")
    if isinstance(reply, AskError):
        return Redirect("ask", reply.slot_id, f"{reply.host}:{reply.port}")
    if isinstance(reply, TryAgainError):
        return Redirect("tryagain")
    if isinstance(reply, ClusterDownError):
        return Redirect("down")
    return None


def slot_table(reply: Sequence[object], default_host: str) -> list[str | None]:
    """`CLUSTER SLOTS` -> for each slot, 'host:port' of the master serving it (None: unserved)."""
    table: list[str | None] = [None] * SLOTS
    for row in reply:
        start, end, master = row[0], row[1], row[2]  # type: ignore[index]
        host = master[0]
        host = host.decode() if isinstance(host, bytes) else str(host)
        address = f"{host or default_host}:{int(master[1])}"
        table[int(start):int(end) + 1] = [address] * (int(end) + 1 - int(start))
    return table
