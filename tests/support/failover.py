"""A failover drill for tests: accounts written to steadily (each event a new
session, retried on 503 until acknowledged), whole-account live clients that
resume on any process after any drop, and the checks of issue 9:

- the same position never carries two different states (every client's state
  at every position it reaches, and REST's, are compared by digest);
- at the end every client is at REST's position with REST's state;
- which acknowledged events are missing from the final state."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets

from app.config import Settings
from tests.support.factories import event, token
from tests.support.live import EVENTS_KEY, LiveClient, State, rest_state
from tests.support.processes import ServiceProcess


def digest(sessions: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(sessions, sort_keys=True).encode()).hexdigest()


@dataclass
class Drill:
    procs: Sequence[ServiceProcess]
    accounts: Sequence[str]
    settings: Settings
    watchers_per_account: int = 2
    acked: dict[str, list[str]] = field(default_factory=dict)  # account -> acknowledged session ids
    unavailable: int = 0  # 503s and refused connections (retried)
    conflicts: list[str] = field(default_factory=list)
    states: dict[tuple[str, str], State] = field(default_factory=dict)
    seen: dict[tuple[str, str, int], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop_writing = asyncio.Event()
        self._stop_watching = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._writers: list[asyncio.Task[None]] = []

    def token(self, account: str) -> str:
        return token(self.settings, account=account, sub=f"mgr-{account}", roles=("User", "Manager"))

    def record(self, account: str, epoch: str | None, cursor: int, sessions: dict[str, Any], who: str) -> None:
        if epoch is None:
            return
        key, value = (account, epoch, cursor), digest(sessions)
        known = self.seen.setdefault(key, value)
        if known != value:
            self.conflicts.append(f"{who}: {account} at {epoch}:{cursor} differs from what was seen there before")

    # -- load ---------------------------------------------------------------------
    async def _write(self, account: str) -> None:
        acked = self.acked.setdefault(account, [])
        n = 0
        async with httpx.AsyncClient(timeout=10) as http:
            while not self._stop_writing.is_set():
                sid = f"{account}-S{n}"
                body = {"events": [event("session.upsert", account, sid, event_id=f"{sid}-e",
                                         session={"endpointId": "E1", "callState": "Ringing"})]}
                while True:  # until acknowledged: the same event id, so a retry is a no-op if it landed
                    base = random.choice(self.procs).url
                    try:
                        r = await http.post(base + "/events", json=body,
                                            headers={"Authorization": f"Bearer {EVENTS_KEY}"})
                    except httpx.HTTPError:
                        r = None
                    if r is not None and r.status_code == 200:
                        acked.append(sid)
                        break
                    assert r is None or r.status_code == 503, (r.status_code, r.text)
                    self.unavailable += 1
                    await asyncio.sleep(0.05)
                n += 1
                await asyncio.sleep(0.01)

    async def _watch(self, account: str, index: int) -> None:
        state = self.states[(account, str(index))] = State()
        tok, who = self.token(account), f"client {account}/{index}"
        attempt = index
        while not self._stop_watching.is_set():
            base = self.procs[attempt % len(self.procs)].url
            attempt += 1
            try:
                client = await LiveClient.connect(base, tok, state=state,
                                                  since=state.position if state.epoch else None)
                try:
                    while not self._stop_watching.is_set():
                        try:
                            await client.recv(timeout=0.5)
                        except TimeoutError:
                            continue
                        self.record(account, state.epoch, state.cursor, state.sessions, who)
                finally:
                    await client.close()
            except (websockets.ConnectionClosed, OSError, TimeoutError, websockets.InvalidStatus):
                await asyncio.sleep(0.1)

    def start(self) -> None:
        for account in self.accounts:
            self._writers.append(asyncio.create_task(self._write(account)))
            for index in range(self.watchers_per_account):
                self._tasks.append(asyncio.create_task(self._watch(account, index)))

    async def acked_at_least(self, account: str, count: int, timeout: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.acked.get(account, [])) < count:
            assert loop.time() < deadline, f"{account}: only {len(self.acked.get(account, []))} acknowledged"
            await asyncio.sleep(0.05)

    # -- the end ------------------------------------------------------------------
    async def finish(self, timeout: float = 30.0) -> dict[str, list[str]]:
        """Stop writing, let every client come to REST's position, compare; the
        acknowledged sessions missing from the final state, per account."""
        self._stop_writing.set()
        # A write still in flight would commit after REST's read below and move
        # the clients past it: wait until every writer has its last answer.
        await asyncio.gather(*self._writers)
        loop = asyncio.get_running_loop()
        missing: dict[str, list[str]] = {}
        for account in self.accounts:
            position, sessions = await rest_state(self.procs[0].url, self.token(account))
            epoch, _, cursor = position.partition(":")
            self.record(account, epoch, int(cursor), sessions, "REST")
            deadline = loop.time() + timeout
            for index in range(self.watchers_per_account):
                state = self.states[(account, str(index))]
                while state.position != position:
                    assert loop.time() < deadline, f"{account}/{index} stuck at {state.position}, REST at {position}"
                    await asyncio.sleep(0.05)
                assert state.sessions == sessions, f"{account}/{index} differs from REST at {position}"
            missing[account] = [sid for sid in self.acked.get(account, []) if sid not in sessions]
        self._stop_watching.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        assert not self.conflicts, self.conflicts[:5]
        return missing

    def figures(self, missing: dict[str, list[str]]) -> str:
        acked = sum(len(v) for v in self.acked.values())
        lost = sum(len(v) for v in missing.values())
        resets = sum(state.resets for state in self.states.values())
        return (f"acknowledged {acked}, acknowledged-then-lost {lost}, 503s/refused (retried) {self.unavailable}, "
                f"client resets {resets} over {len(self.states)} clients, conflicting positions {len(self.conflicts)}")

    async def abort(self) -> None:
        self._stop_writing.set()
        self._stop_watching.set()
        await asyncio.gather(*self._writers, *self._tasks, return_exceptions=True)
