"""The data a scenario runs on: accounts, endpoints, sessions, the viewers who watch them,
and how to put it all into a server (ours or a baseline) before the clock starts.

Everything is derived from a few counts and a prefix, so every process that needs the same
world (the orchestrator, the generators, the clients) rebuilds it instead of shipping it."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec

from app.auth.tokens import mint_token
from app.config import Settings, load_settings
from bench.samples import full_session_fields

EVENTS_KEY = "test-events-key"  # APP_ENV=test (config/test.toml)
_settings: Settings | None = None


def settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = load_settings({"APP_ENV": "test"})
    return _settings


@dataclass(frozen=True)
class Viewer:
    """One subscriber: a user watching one endpoint, or a manager watching the whole account."""

    account: str
    endpoint: str | None
    manager: bool
    token: str


@dataclass(frozen=True)
class World:
    prefix: str
    accounts: int
    endpoints: int  # per account
    sessions_per_endpoint: int

    def account(self, a: int) -> str:
        return f"{self.prefix}A{a}"

    def endpoint(self, e: int) -> str:
        return f"E{e}"

    def session(self, a: int, e: int, s: int) -> str:
        return f"{self.prefix}S{a}-{e}-{s}"

    def sessions(self) -> Iterator[tuple[int, int, int]]:
        for a in range(self.accounts):
            for e in range(self.endpoints):
                for s in range(self.sessions_per_endpoint):
                    yield a, e, s

    def random_session(self, rng: random.Random) -> tuple[int, int, int]:
        return (rng.randrange(self.accounts), rng.randrange(self.endpoints),
                rng.randrange(self.sessions_per_endpoint))

    # -- what gets stored ---------------------------------------------------------------------
    def seed_events(self) -> list[dict[str, Any]]:
        """One upsert per session with every field a real call carries, visible to its own
        endpoint only (its members and answerer are on that endpoint too)."""
        out = []
        for a, e, s in self.sessions():
            ep = self.endpoint(e)
            fields = full_session_fields()
            fields.pop("dateCompleted", None)
            fields.update(endpointId=ep, answeredById=ep, callSid=f"CA{a:04d}{e:04d}{s:04d}",
                          displayName=f"Caller {s}", consoleData="seed")
            fields["members"][0].update(endpointId=ep, callSid=f"CB{a:04d}{e:04d}{s:04d}")
            out.append({
                "type": "session.upsert", "eventId": f"seed-{self.session(a, e, s)}",
                "accountId": self.account(a), "sessionId": self.session(a, e, s),
                "occurredAt": f"2024-05-01T10:{s % 60:02d}:00Z", "session": fields,
            })
        return out

    def viewers(self, count: int, managers_per_account: int = 1) -> list[Viewer]:
        """`count` subscribers spread evenly over the accounts: in each account the first
        `managers_per_account` see everything, the rest are users, one endpoint each."""
        out: list[Viewer] = []
        per_account = max(1, -(-count // self.accounts))
        for i in range(count):
            a, k = divmod(i, per_account)
            a %= self.accounts
            manager = k < managers_per_account
            ep = None if manager else self.endpoint((k - managers_per_account) % self.endpoints)
            roles = ("User", "Manager") if manager else ("User",)
            out.append(Viewer(self.account(a), ep, manager,
                              mint_token(settings().jwt_verify_key(), sub=f"u{i}", account_id=self.account(a),
                                         endpoint_id=ep, roles=list(roles))))
        return out


def seed(base_url: str, events: list[dict[str, Any]], batch: int = 250) -> None:
    """Store the events through `POST /events` (ours and the socket.io baseline both take it)."""
    with httpx.Client(base_url=base_url, timeout=120) as client:
        for i in range(0, len(events), batch):
            r = client.post("/events", content=msgspec.json.encode({"events": events[i:i + batch]}),
                            headers={"Authorization": f"Bearer {EVENTS_KEY}",
                                     "Content-Type": "application/json"})
            if r.status_code != 200:
                raise RuntimeError(f"seeding {base_url} failed: {r.status_code} {r.text[:500]}")


def stamped_upsert(event_id: str, account: str, session: str, stamp_ns: int) -> bytes:
    """One event changing one field to a send-time stamp (`bench:<time_ns>`), which every
    receiver finds in the frame it gets and subtracts from its own clock."""
    return (b'{"events":[{"type":"session.upsert","eventId":"' + event_id.encode()
            + b'","accountId":"' + account.encode() + b'","sessionId":"' + session.encode()
            + b'","occurredAt":"2024-05-01T11:00:00Z","session":{"consoleData":"bench:'
            + str(stamp_ns).encode() + b'"}}]}')
