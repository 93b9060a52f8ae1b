"""Where a (re)connecting client starts: replay exactly what it missed, or a snapshot.

`decide` is pure: given the client's last position and the change log it
returns the replay, or why a fresh snapshot (marked `reset`) is needed instead.
`start` fetches what `decide` needs from the store."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from app.domain import digest
from app.domain.changes import Change, LogRead
from app.live import protocol
from app.live.protocol import Message
from app.domain.positions import Position
from app.live.views import Viewer, ops_for, seen, visible_sessions

ResetReason = Literal["epoch", "ahead", "trimmed", "too-far"]


class View(Protocol):
    """A snapshot's shape (the store's `View` has it): where it stands, and its sessions' wire JSON."""

    @property
    def epoch(self) -> str: ...

    @property
    def cursor(self) -> int: ...

    @property
    def sessions(self) -> list[bytes]: ...


class ChangeSource(Protocol):
    """The reads live push needs (SessionStore has them)."""

    async def epoch(self, account_id: str) -> str: ...

    async def cursor(self, account_id: str) -> int: ...

    async def changes_since(self, account_id: str, cursor: int, limit: int = ...) -> list[Change] | None: ...

    async def log_since(self, account_id: str, cursor: int, limit: int = ...) -> LogRead: ...

    async def view(self, account_id: str, endpoint_id: str | None, whole_account: bool) -> View: ...


@dataclass(frozen=True, slots=True)
class Start:
    """The messages that bring a client to `epoch:cursor`, where live relay takes over."""

    epoch: str
    cursor: int
    messages: list[Message]
    outcome: Literal["snapshot", "resumed", "reset"]
    digest: int | None = None  # the state digest at epoch:cursor, when known (a snapshot's)


@dataclass(frozen=True, slots=True)
class Reset:
    reason: ResetReason


def decide(
    since: Position, epoch: str, head: int, changes: list[Change] | None, viewer: Viewer, budget: int
) -> Start | Reset:
    """Replay the viewer's patches after `since`, or say why that is impossible.

    A replay larger than `budget` characters is refused: a snapshot is smaller
    and would not overflow the connection's send queue."""
    if since.epoch != epoch:
        return Reset("epoch")
    if since.cursor > head:
        return Reset("ahead")
    if changes is None:
        return Reset("trimmed")
    patches: list[Message] = []
    end, size = since.cursor, 0
    for change in changes:
        if change.epoch != epoch:
            return Reset("epoch")
        end = change.cursor
        ops = ops_for(change.entry, seen(change.entry, viewer))
        if ops:
            message = protocol.patch(epoch, change.cursor, ops)
            size += message.size
            if size > budget:
                return Reset("too-far")
            patches.append(message)
    return Start(epoch, end, [protocol.resumed(epoch, since.cursor, len(patches)), *patches], "resumed")


async def snapshot(source: ChangeSource, viewer: Viewer, reset: bool, digests: bool = False) -> Start:
    """A fresh snapshot; with `digests`, carrying its state digest."""
    view = await source.view(viewer.account_id, viewer.endpoint_id, viewer.whole_account)
    sessions = visible_sessions(viewer, view.sessions)
    state = digest.of_blobs(sessions) if digests else None
    message = protocol.snapshot(view.epoch, view.cursor, sessions, reset,
                                digest.text(state) if state is not None else None)
    return Start(view.epoch, view.cursor, [message], "reset" if reset else "snapshot", state)


@dataclass(frozen=True, slots=True)
class DigestBase:
    """The digest of a viewer's state at a position read from the store (maybe ahead of the
    client's): a resumed client's digest is known from the moment it reaches `cursor`."""

    epoch: str
    cursor: int
    digest: int


async def digest_base(source: ChangeSource, viewer: Viewer) -> DigestBase:
    """One view read, hashed and not sent: what a replay does not tell (docs/protocol.md)."""
    return base_of(await source.view(viewer.account_id, viewer.endpoint_id, viewer.whole_account), viewer)


def base_of(view: View, viewer: Viewer) -> DigestBase:
    """The viewer's digest at a view's position. The view may be wider than the viewer's (the
    whole account's, shared by many resumes): the rule picks the viewer's sessions from it."""
    return DigestBase(view.epoch, view.cursor, digest.of_blobs(visible_sessions(viewer, view.sessions)))


ReadLog = Callable[[str, int, int], Awaitable[LogRead]]  # (account, cursor, limit): what log_since answers


async def start(
    source: ChangeSource, viewer: Viewer, since: Position | None, *, max_changes: int, budget: int,
    digests: bool = False, read_log: ReadLog | None = None,
) -> Start:
    """A snapshot, or the replay after `since` when the log still holds it. `read_log`
    (default `source.log_since`) reads the position and the log: the hub shares one read
    among the resumes of a storm."""
    if since is None:
        return await snapshot(source, viewer, reset=False, digests=digests)
    log = await (read_log or source.log_since)(viewer.account_id, since.cursor, max_changes)  # one round trip
    result = decide(since, log.epoch, log.head, log.changes, viewer, budget)
    if isinstance(result, Reset):
        return await snapshot(source, viewer, reset=True, digests=digests)
    return result
