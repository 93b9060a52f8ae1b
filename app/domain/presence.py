"""Agent presence (pure): who is present, lease arithmetic, the presence publication.

An endpoint (an agent's softphone) is present while at least one of its live
connections, on any process, holds an unexpired lease. Each process renews the
leases of its own connections every `interval`; a lease runs `lease` seconds past
its last renewal. A connection that ends leaves in its process's next renewal (within
`interval`; a reconnect of the same endpoint before then takes its lease over, so a
reconnect moves nothing); one whose process died stops being renewed, and the first
sweep after its lease ran out (every process sweeps the accounts it serves, every
`interval`) publishes the leave. So a leave is seen within `leave_bound(lease,
interval)` of the end, whatever ended it.

A change of presence is published on the account's live channel as
`presence\\n<version>\\n<join|leave>\\n<entry JSON>` (app/storage/lua/presence.lua);
`version` counts the account's presence changes, so a relay sees a gap."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Final, Literal

import msgspec

from app.domain.visibility import Viewer

PUBLICATION_PREFIX: Final = b"presence\n"
"""Never the start of a change publication (`<epoch>\\n…`: an epoch is hex)."""


class Present(msgspec.Struct, rename="camel", omit_defaults=True, frozen=True):
    """One present endpoint, as `GET /presence` and the `presence` message show it."""

    endpoint_id: str
    user_id: str
    name: str | None = None
    since: str = ""  # when the endpoint's first live connection began (UTC, ISO 8601, ms)
    connections: int | None = None  # its live connections (`GET /presence` only)


class PresenceReply(msgspec.Struct, rename="camel"):
    """`GET /presence`: the present endpoints the caller may see, at `version` (the
    account's count of presence changes, as on `presence` messages)."""

    account_id: str
    version: int
    endpoints: list[Present]


class PresenceEvent(msgspec.Struct, frozen=True):
    version: int
    kind: Literal["join", "leave"]
    entry: Present
    raw: bytes  # the entry JSON as published (shared by every message built from it)


class BadPresence(ValueError):
    pass


_entry_encoder = msgspec.json.Encoder()
_entry_decoder = msgspec.json.Decoder(Present)


def entry_of(endpoint_id: str, user_id: str, name: str | None, since: float) -> bytes:
    """The stored and published JSON of a present endpoint (no connection count)."""
    return _entry_encoder.encode(Present(endpoint_id, user_id, name, iso_ms(since)))


def encode_entry(entry: Present) -> bytes:
    """An entry's JSON without its connection count (the live list's form)."""
    return _entry_encoder.encode(msgspec.structs.replace(entry, connections=None))


def iso_ms(unix_seconds: float) -> str:
    utc = datetime.fromtimestamp(unix_seconds, tz=UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def is_publication(data: bytes) -> bool:
    return data.startswith(PUBLICATION_PREFIX)


def parse_publication(data: bytes) -> PresenceEvent:
    try:
        _, version, kind, raw = data.split(b"\n", 3)
        if kind not in (b"join", b"leave"):
            raise ValueError(f"unknown presence event {kind!r}")
        return PresenceEvent(int(version), "join" if kind == b"join" else "leave", _entry_decoder.decode(raw), raw)
    except (ValueError, msgspec.DecodeError) as exc:
        raise BadPresence(str(exc)) from None


def decode_entry(raw: bytes, connections: int | None = None) -> Present:
    entry = _entry_decoder.decode(raw)
    return msgspec.structs.replace(entry, connections=connections) if connections is not None else entry


# -- leases -----------------------------------------------------------------------------


def expiry_ms(now: float, lease_seconds: float) -> int:
    """A lease renewed at `now` (Unix seconds) runs out at this Unix millisecond."""
    return math.ceil((now + lease_seconds) * 1000)


def now_ms(now: float) -> int:
    """Leases at or before this Unix millisecond have run out."""
    return math.floor(now * 1000)


def leave_bound(lease_seconds: float, interval_seconds: float) -> float:
    """The longest a leave takes to be published after a connection's last renewal was
    due, its process dead: the lease, then at most one interval to the next sweep."""
    return lease_seconds + interval_seconds


# -- who sees whom ------------------------------------------------------------------------


def sees(viewer: Viewer, endpoint_id: str) -> bool:
    """Managers and Admins see every present endpoint of their account; anyone else
    sees their own endpoint only."""
    return viewer.whole_account or (viewer.endpoint_id is not None and viewer.endpoint_id == endpoint_id)


def visible(viewer: Viewer, entries: list[Present]) -> list[Present]:
    return sorted((e for e in entries if sees(viewer, e.endpoint_id)), key=lambda e: e.endpoint_id)
