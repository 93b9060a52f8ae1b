"""Plays calls against a service in real time: new calls arrive at random
(a Poisson process at `rate` calls per second), each call's steps are sent at
their call time divided by `speed`, and a progress line says how it goes."""

from __future__ import annotations

import asyncio
import random
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO

from app.simulator.cast import Account, Agent, Cast
from app.simulator.flows import FLOWS, WEIGHTS, Call, Callback, build_call
from app.simulator.sender import Sender, SendFailed


@dataclass
class Progress:
    started: int = 0
    finished: int = 0
    callbacks: int = 0
    events: int = 0
    failed: int = 0
    dropped: int = 0  # callbacks not sent on purpose (Plan.drop_callbacks)
    flows: Counter[str] = field(default_factory=Counter)
    last_error: str = ""
    began: float = field(default_factory=time.monotonic)

    @property
    def active(self) -> int:
        return self.started - self.finished

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.began, 1e-9)
        sent = self.callbacks + self.events
        text = (f"{int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}  calls {self.started} started, {self.active} live, "
                f"{self.finished} ended | sent {self.callbacks} callbacks + {self.events} events "
                f"({sent / elapsed:.1f}/s) | {self.failed} failed")
        if self.dropped:
            text += f" | {self.dropped} callbacks dropped"
        return text + (f" (last: {self.last_error[:80]})" if self.last_error else "")


@dataclass(frozen=True)
class Plan:
    rate: float = 0.5  # new calls per second
    speed: float = 1.0  # call time runs this many times faster than real time
    calls: int = 0  # stop starting calls after this many (0: no limit)
    duration: float = 0.0  # or after this many seconds (0: no limit)
    flows: str = "abcdef"
    seed: int | None = None
    # This share of Twilio callbacks is never sent, as when Twilio's request is lost: calls
    # then stay stuck until the sweep (app/sweep/) finds them.
    drop_callbacks: float = 0.0


class Simulator:
    def __init__(self, sender: Sender, cast: Cast, plan: Plan, out: TextIO | None = sys.stderr,
                 progress_every: float | None = None) -> None:
        self.sender = sender
        self.cast = cast
        self.plan = plan
        self.progress = Progress()
        self._out = out
        self._tty = bool(out is not None and out.isatty())
        self._every = progress_every if progress_every is not None else (0.5 if self._tty else 5.0)
        self._rng = random.Random(plan.seed)
        self._run_id = uuid.UUID(int=self._rng.getrandbits(128)).hex[:8] if plan.seed is not None else uuid.uuid4().hex[:8]
        self._busy: Counter[str] = Counter()  # agent user id -> calls they are in
        self._drops: dict[str, frozenset[int]] = {}  # session id -> indices of the steps not to send
        if not 0.0 <= plan.drop_callbacks <= 1.0:
            raise ValueError(f"drop_callbacks is a share of callbacks, from 0 to 1, not {plan.drop_callbacks}")
        self._letters = [f for f in plan.flows if f in FLOWS]
        if not self._letters:
            raise ValueError(f"no known flows in {plan.flows!r}; choose from {''.join(FLOWS)}")

    async def run(self) -> Progress:
        """Start calls until the plan says stop, then let the calls in flight finish."""
        calls: set[asyncio.Task[None]] = set()
        reporter = asyncio.create_task(self._report())
        deadline = time.monotonic() + self.plan.duration if self.plan.duration > 0 else float("inf")
        try:
            while (self.plan.calls <= 0 or self.progress.started < self.plan.calls) and time.monotonic() < deadline:
                task = asyncio.create_task(self._play(self.next_call()))
                calls.add(task)
                task.add_done_callback(calls.discard)
                await asyncio.sleep(min(self._rng.expovariate(self.plan.rate), max(0.0, deadline - time.monotonic())))
            if calls:
                await asyncio.gather(*calls)
        finally:
            for task in calls:
                task.cancel()
            reporter.cancel()
            await asyncio.gather(reporter, *calls, return_exceptions=True)
            self._print(final=True)
        return self.progress

    def next_call(self) -> Call:
        n = self.progress.started + 1
        letter = self._rng.choices(self._letters, weights=[WEIGHTS[f] for f in self._letters])[0]
        # The demo account (first) gets twice the traffic, so its console is busy.
        accounts = self.cast.accounts
        account = self._rng.choices(accounts, weights=[2] + [1] * (len(accounts) - 1))[0]
        agents = self._free_agents(account, FLOWS[letter][2])
        customer = self._rng.choice(self.cast.customers)
        call = build_call(letter, account, f"sim-{self._run_id}-{n}", agents, customer,
                          random.Random(self._rng.getrandbits(64)))
        self.progress.started += 1
        self.progress.flows[call.flow] += 1
        if self.plan.drop_callbacks:  # chosen here, in call order, so a seeded run drops the same ones
            self._drops[call.session_id] = frozenset(
                i for i, step in enumerate(call.steps)
                if isinstance(step.action, Callback) and self._rng.random() < self.plan.drop_callbacks)
        return call

    def dropping(self, call: Call) -> frozenset[int]:
        """The indices of the call's steps it will not send (Plan.drop_callbacks)."""
        return self._drops.get(call.session_id, frozenset())

    def _free_agents(self, account: Account, count: int) -> tuple[Agent, ...]:
        """The agents in the fewest calls right now (ties at random)."""
        ranked = sorted(account.agents, key=lambda a: (self._busy[a.user_id], self._rng.random()))
        return tuple(ranked[:count])

    async def _play(self, call: Call) -> None:
        for agent in call.agents:
            self._busy[agent.user_id] += 1
        start = time.monotonic()
        drops = self._drops.pop(call.session_id, frozenset())
        try:
            for index, step in enumerate(call.steps):
                delay = start + step.at / self.plan.speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if index in drops:
                    self.progress.dropped += 1
                    continue
                try:
                    await self.sender.send(call, step.action)
                except SendFailed as exc:
                    self.progress.failed += 1
                    self.progress.last_error = str(exc)
                    continue
                if isinstance(step.action, Callback):
                    self.progress.callbacks += 1
                else:
                    self.progress.events += 1
        finally:
            for agent in call.agents:
                self._busy[agent.user_id] -= 1
            self.progress.finished += 1

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            self._print()

    def _print(self, final: bool = False) -> None:
        if self._out is None:
            return
        if self._tty:
            self._out.write("\r\x1b[2K" + self.progress.line() + ("\n" if final else ""))
        else:
            self._out.write(self.progress.line() + "\n")
        self._out.flush()


async def simulate(url: str, *, public_url: str, twilio_token: str, events_key: str, cast: Cast, plan: Plan,
                   out: TextIO | None = sys.stderr) -> Progress:
    """Run a simulator against the service at `url` until its plan is done."""
    sender = Sender(url, public_url=public_url or url, twilio_token=twilio_token, events_key=events_key)
    return await Simulator(sender, cast, plan, out).run()
