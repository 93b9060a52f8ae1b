"""Reading back what a Redis client wrote (RESP), for tests that count or fail writes."""

from __future__ import annotations


def resp_commands(data: bytes) -> list[list[bytes]]:
    """The commands in RESP bytes as sent by a client (arrays of bulk strings)."""
    commands: list[list[bytes]] = []
    at = 0
    while at < len(data):
        assert data[at:at + 1] == b"*", data[at:at + 20]
        end = data.index(b"\r\n", at)
        count, at = int(data[at + 1:end]), end + 2
        args: list[bytes] = []
        for _ in range(count):
            assert data[at:at + 1] == b"$"
            end = data.index(b"\r\n", at)
            size, at = int(data[at + 1:end]), end + 2
            args.append(data[at:at + size])
            at += size + 2
        commands.append(args)
    return commands
