"""Who the simulated calls are between (pure): accounts with their agents,
Twilio numbers and AccountSids, and a pool of customers. Seeded, so a run can
be repeated, and the first account is always the demo account, with the two
people (`app.auth.demo_users`) the console's dev sign-in and `python -m app demo` use."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Final

AGENT_NAMES: Final = ("Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy",
                      "Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter")
ACCOUNT_NAMES: Final = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell")
FIRST_NAMES: Final = ("Jane", "Wade", "Esther", "Cameron", "Brooklyn", "Leslie", "Jenny", "Guy", "Robert", "Jacob",
                      "Kristin", "Cody", "Savannah", "Darlene", "Ralph", "Courtney", "Theresa", "Marvin", "Albert")
LAST_NAMES: Final = ("Cooper", "Warren", "Howard", "Williamson", "Simmons", "Alexander", "Wilson", "Hawkins", "Fox",
                     "Jones", "Watson", "Fisher", "Nguyen", "Robertson", "Edwards", "Henry", "Webb", "McKinney")
TOPICS: Final = ("Billing question", "Password reset", "Order status", "Upgrade plan", "Delivery problem",
                 "New account", "Cancel subscription", "Technical support", "Refund request", "Address change")


def sid(prefix: str, *parts: object) -> str:
    """A well-formed Twilio SID (`CA`/`CF`/`AC` + 32 hex digits) derived from `parts`."""
    return prefix + hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Agent:
    user_id: str
    endpoint_id: str
    name: str

    @property
    def client(self) -> str:
        """The agent's Voice SDK address, as Twilio writes it in `To`/`From`."""
        return f"client:{self.user_id}"


@dataclass(frozen=True)
class Account:
    account_id: str
    name: str
    twilio_sid: str
    number: str  # the company's Twilio number customers call
    agents: tuple[Agent, ...]
    manager: Agent


@dataclass(frozen=True)
class Customer:
    customer_id: str
    name: str
    number: str


@dataclass(frozen=True)
class Cast:
    accounts: tuple[Account, ...]
    customers: tuple[Customer, ...]

    @property
    def demo(self) -> Account:
        return self.accounts[0]


def build_cast(accounts: int = 3, agents: int = 4, customers: int = 40, seed: int = 1) -> Cast:
    rng = random.Random(seed)
    built = tuple(_account(i, agents) for i in range(max(1, accounts)))
    people = tuple(
        Customer(f"C{1000 + i}", f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}", f"+1555{rng.randrange(10**7):07d}")
        for i in range(max(1, customers))
    )
    return Cast(built, people)


def _account(index: int, agents: int) -> Account:
    name = ACCOUNT_NAMES[index % len(ACCOUNT_NAMES)] + ("" if index < len(ACCOUNT_NAMES) else str(index))
    account_id = name.lower()
    people = tuple(
        Agent(f"{account_id}.{first.lower()}", f"{account_id}.{first.lower()}", first)
        for first in (AGENT_NAMES[(index * 3 + n) % len(AGENT_NAMES)] for n in range(max(1, agents)))
    )
    manager = Agent(f"{account_id}.morgan", f"{account_id}.morgan", "Morgan")
    return Account(account_id, f"{name} Inc", sid("AC", account_id), f"+1800555{index:04d}", people, manager)


DEMO_CAST: Final = build_cast()

