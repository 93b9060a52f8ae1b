"""Every Redis key and channel name, in one place.

All keys of one account carry the hash tag `{a:<accountId>}`, so everything one
event touches sits in one Redis Cluster slot and one Lua script can touch it."""

from __future__ import annotations

PREFIX = "cs"


def tag(account_id: str) -> str:
    return f"{{a:{account_id}}}"


def session(account_id: str, session_id: str) -> str:
    """Hash: info (SessionInfo JSON), meta (private JSON), rev."""
    return f"{PREFIX}:{tag(account_id)}:sess:{session_id}"


def active(account_id: str) -> str:
    """Set of the account's active session ids (the managers' view)."""
    return f"{PREFIX}:{tag(account_id)}:active"


def endpoint(account_id: str, endpoint_id: str) -> str:
    """Set of active session ids visible to one endpoint."""
    return f"{PREFIX}:{tag(account_id)}:ep:{endpoint_id}"


def seq(account_id: str) -> str:
    """Counter: the account's change cursor."""
    return f"{PREFIX}:{tag(account_id)}:seq"


def epoch(account_id: str) -> str:
    """Random id of this incarnation of the account's change log; a new one
    means Redis lost it and cursors from before are meaningless."""
    return f"{PREFIX}:{tag(account_id)}:epoch"


def epoch_generation(account_id: str) -> str:
    """The node generation (replication id) the account's epoch was started
    under: a commit under another one starts a new epoch (lua/generation.lua)."""
    return f"{PREFIX}:{tag(account_id)}:epochgen"


def wait_probe(account_id: str) -> str:
    """Written before a `WAIT` that must cover earlier writes of other connections
    (REDIS_WAIT_REPLICAS, for a duplicate or unchanged commit)."""
    return f"{PREFIX}:{tag(account_id)}:waitprobe"


def changes(account_id: str) -> str:
    """Stream: the account's bounded change log, entry id `<cursor>-0`."""
    return f"{PREFIX}:{tag(account_id)}:changes"


def dedupe(account_id: str, idempotency_key: str) -> str:
    return f"{PREFIX}:{tag(account_id)}:seen:{idempotency_key}"


def live_channel(account_id: str) -> str:
    """Pub/sub channel carrying the account's committed changes to every process."""
    return f"{PREFIX}:{tag(account_id)}:live"


def owner(session_id: str) -> str:
    """Which account a session id belongs to, for life (outside account slots)."""
    return f"{PREFIX}:owner:{session_id}"


def call_link(call_sid: str) -> str:
    """Which `accountId sessionId` a Twilio CallSid belongs to."""
    return f"{PREFIX}:call:{call_sid}"


def dead_letters() -> str:
    return f"{PREFIX}:deadletters"


def conference_link(conference_sid: str) -> str:
    """Which `accountId sessionId` a Twilio ConferenceSid belongs to."""
    return f"{PREFIX}:conf:{conference_sid}"


def dead_letter_index(sid: str) -> str:
    """List: copies of the dead letters that name one Twilio SID, to replay
    them once that SID becomes resolvable."""
    return f"{PREFIX}:deadletters:sid:{sid}"


def dead_letter_count() -> str:
    """Counter: dead letters ever written (the list itself is bounded)."""
    return f"{PREFIX}:deadletters:count"


# -- the sweep (app/sweep/) ------------------------------------------------------------

def sweep_accounts() -> str:
    """Set of every account that has had a session: the accounts the sweep looks at.
    Added to by a session's first commit (a single-key command in its batch)."""
    return f"{PREFIX}:sweep:accounts"


def sweep_lease(account_id: str) -> str:
    """The account's sweeper lease: a random token of the process sweeping it, with an expiry."""
    return f"{PREFIX}:{tag(account_id)}:sweep:lease"


def sweep_asked(account_id: str, session_id: str) -> str:
    """Set (NX, with an expiry) when the sweep asks about a session: one ask per
    session per recheck interval, whichever process sweeps."""
    return f"{PREFIX}:{tag(account_id)}:sweep:asked:{session_id}"


def sweep_counts(account_id: str) -> str:
    """Hash: what the sweep did for the account (asked, resolved:<status>, lost, stale, errors, lastPassAt)."""
    return f"{PREFIX}:{tag(account_id)}:sweep:counts"


# -- agent presence (app/storage/presence_store.py, lua/presence.lua) ----------------------


def presence_leases(account_id: str) -> str:
    """Sorted set: live connection id -> the Unix millisecond its lease runs out."""
    return f"{PREFIX}:{tag(account_id)}:presence:leases"


def presence_connections(account_id: str) -> str:
    """Hash: live connection id -> its endpoint id."""
    return f"{PREFIX}:{tag(account_id)}:presence:conns"


def presence_counts(account_id: str) -> str:
    """Hash: present endpoint id -> how many live connections it has."""
    return f"{PREFIX}:{tag(account_id)}:presence:counts"


def presence_entries(account_id: str) -> str:
    """Hash: present endpoint id -> its entry JSON (who, since when)."""
    return f"{PREFIX}:{tag(account_id)}:presence:who"


def presence_version(account_id: str) -> str:
    """Counter: the account's presence changes (each join and leave published)."""
    return f"{PREFIX}:{tag(account_id)}:presence:version"
