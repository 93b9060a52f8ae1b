"""RESP: how a batch of commands is written to Redis (pure)."""

from __future__ import annotations

from collections.abc import Sequence

Command = tuple[str | bytes | int, ...]
"""One Redis command: its name, then its arguments (str as UTF-8, bytes, or int)."""

_HEADS = [b"$%d\r\n" % n for n in range(1024)]  # bulk string headers, built once


def pack(commands: Sequence[Command]) -> bytes:
    """RESP arrays of bulk strings for `commands`, as one bytes object (what
    redis-py's `pack_commands` sends, without its encoder and buffer logic).
    Arguments are str (UTF-8), bytes or int; anything else is a TypeError."""
    out: list[bytes] = []
    add = out.append
    heads = _HEADS
    for command in commands:
        add(b"*%d\r\n" % len(command))
        for arg in command:
            kind = type(arg)
            if kind is str:
                data = arg.encode()  # type: ignore[union-attr]
            elif kind is bytes:
                data = arg
            elif kind is int:
                data = b"%d" % arg  # type: ignore[str-format]
            else:
                data = _other(arg)
            size = len(data)
            add(heads[size] if size < 1024 else b"$%d\r\n" % size)
            add(data)
            add(b"\r\n")
    return b"".join(out)


def _other(arg: object) -> bytes:
    """Subclasses (a str enum, say) as their base type; nothing else."""
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, bytes):
        return bytes(arg)
    if isinstance(arg, int) and not isinstance(arg, bool):
        return b"%d" % arg
    raise TypeError(f"cannot send {type(arg).__name__} to Redis")
