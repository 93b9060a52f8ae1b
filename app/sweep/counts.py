"""What the sweep did for one account (pure): the shape `GET /sessions/sweep` answers
with, read from the account's counters hash (`keys.sweep_counts`), which every
process's sweeper adds to."""

from __future__ import annotations

import msgspec


class SweepCounts(msgspec.Struct, rename="camel", kw_only=True):
    """Since the counters began (they are kept in Redis, shared by every process)."""

    account_id: str
    asked: int = 0  # stuck sessions taken up (asked Twilio about, or marked stale)
    confirmed: int = 0  # calls Twilio said were as the session already had them
    resolved: dict[str, int] = {}  # calls whose status Twilio told, applied, by that status
    lost: int = 0  # calls Twilio no longer knew (404): ended with outcome `lost`
    stale: int = 0  # sessions marked stale (no credentials, nothing to ask about, no answer)
    errors: int = 0  # Twilio requests that failed
    last_pass_at: str | None = None  # when the sweep last looked at the account
    interval_seconds: float = 0.0  # how often it looks (SWEEP_INTERVAL_SECONDS; 0: never)


def from_hash(account_id: str, values: dict[str, str], interval_seconds: float) -> SweepCounts:
    def number(name: str) -> int:
        return int(values.get(name, 0))

    resolved = {k.removeprefix("resolved:"): int(v) for k, v in sorted(values.items()) if k.startswith("resolved:")}
    return SweepCounts(account_id=account_id, asked=number("asked"), confirmed=number("confirmed"),
                       resolved=resolved, lost=number("lost"), stale=number("stale"), errors=number("errors"),
                       last_pass_at=values.get("lastPassAt"), interval_seconds=interval_seconds)
