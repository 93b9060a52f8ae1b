"""The live wire protocol (pure): messages and close codes (positions: `app.domain.positions`).

Every server message is a JSON object with a `type`. Each is encoded once into
a `Message` whose text is shared by every connection that receives it; SSE
framing of the same text is built once, lazily. docs/protocol.md is the spec.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

import msgspec

from app.formats import json_input
from app.domain.positions import Position

# -- close codes ------------------------------------------------------------------


class CloseCode(enum.IntEnum):
    """3000-3499: reconnect (and resume). 3500-3999: do not reconnect as is."""

    SHUTDOWN = 3001
    TOKEN_EXPIRED = 3005
    SLOW = 3008
    SERVER_ERROR = 3011
    NO_PONG = 3012
    BAD_REQUEST = 3500
    UNAUTHORIZED = 3501
    AUTH_TIMEOUT = 3502
    FORBIDDEN = 3503
    TOO_BIG = 3504

    @property
    def reconnect(self) -> bool:
        return 3000 <= self.value < 3500


REASONS: Final = {
    CloseCode.SHUTDOWN: "shutdown, reconnect elsewhere",
    CloseCode.TOKEN_EXPIRED: "token expired",
    CloseCode.SLOW: "slow, reconnect and resume",
    CloseCode.SERVER_ERROR: "server error, reconnect and resume",
    CloseCode.NO_PONG: "no pong",
    CloseCode.BAD_REQUEST: "bad request",
    CloseCode.UNAUTHORIZED: "unauthorized",
    CloseCode.AUTH_TIMEOUT: "no auth message in time",
    CloseCode.FORBIDDEN: "forbidden",
    CloseCode.TOO_BIG: "message too big",
}


@dataclass(frozen=True, slots=True)
class Close:
    code: CloseCode
    reason: str = ""

    @classmethod
    def of(cls, code: CloseCode, detail: str = "") -> Close:
        reason = f"{REASONS[code]}: {detail}" if detail else REASONS[code]
        return cls(code, reason.encode()[:120].decode(errors="ignore"))  # close frames cap reasons at 123 bytes


# -- server -> client ---------------------------------------------------------------


class _Out(msgspec.Struct, tag_field="type", omit_defaults=True, rename="camel"):
    pass


class _Snapshot(_Out, tag="snapshot"):
    epoch: str
    cursor: int
    sessions: dict[str, msgspec.Raw]
    reset: bool = False
    digest: str | None = None  # the state digest at this position (app.domain.digest)


class _Patch(_Out, tag="patch"):
    cursor: int
    ops: list[dict[str, Any]]
    digest: str | None = None  # the wire's shape; `with_digest` appends it to the encoded text


class _Resumed(_Out, tag="resumed"):
    epoch: str
    cursor: int
    replayed: int


class _Ping(_Out, tag="ping"):
    cursor: int | None = None
    digest: str | None = None  # the state digest at `cursor`


class _Pong(_Out, tag="pong"):
    pass


class _Authenticated(_Out, tag="authenticated"):
    expires_at: int


class _Reconnect(_Out, tag="reconnect"):
    reason: str
    delay_ms: int


class _CloseNotice(_Out, tag="close"):
    code: int
    reason: str


_encode = msgspec.json.Encoder().encode


@dataclass(eq=False, slots=True)
class Message:
    """One encoded server message. `text` is shared by every receiver."""

    kind: str
    text: str
    event_id: str | None = None  # SSE `id:` (the position after this message)
    retry_ms: int | None = None  # SSE `retry:` (reconnect delay hint)
    # A patch: the cursor of the state it applies to (not sent; conflation starts there).
    base: int | None = None
    _sse: bytes | None = field(default=None, repr=False)
    _ws_event: dict[str, Any] | None = field(default=None, repr=False)
    _sse_event: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        return len(self.text)

    def sse(self) -> bytes:
        if self._sse is None:
            head = f"retry: {self.retry_ms}\n" if self.retry_ms is not None else ""
            if self.event_id is not None:
                head += f"id: {self.event_id}\n"
            self._sse = f"{head}data: {self.text}\n\n".encode()
        return self._sse

    def ws_event(self) -> dict[str, Any]:
        """The ASGI `websocket.send` event, built once and shared by every socket (read-only)."""
        if self._ws_event is None:
            self._ws_event = {"type": "websocket.send", "text": self.text}
        return self._ws_event

    def sse_event(self) -> dict[str, Any]:
        """The ASGI `http.response.body` event of its SSE framing, built once (read-only)."""
        if self._sse_event is None:
            self._sse_event = {"type": "http.response.body", "body": self.sse(), "more_body": True}
        return self._sse_event


def _message(kind: str, struct: _Out, position: Position | None = None, retry_ms: int | None = None) -> Message:
    return Message(kind, _encode(struct).decode(), str(position) if position else None, retry_ms)


def snapshot(epoch: str, cursor: int, sessions: dict[str, bytes], reset: bool = False,
             digest: str | None = None) -> Message:
    raw = {sid: msgspec.Raw(blob) for sid, blob in sessions.items()}
    return _message("snapshot", _Snapshot(epoch, cursor, raw, reset, digest), Position(epoch, cursor))


def patch(epoch: str, cursor: int, ops: list[dict[str, Any]], base: int | None = None,
          digest: str | None = None) -> Message:
    """The patch from the state at `base` (default `cursor - 1`: one change's patch; a
    conflated one spans more) to the state at `cursor`."""
    message = _message("patch", _Patch(cursor, ops, digest), Position(epoch, cursor))
    message.base = cursor - 1 if base is None else base
    return message


def resumed(epoch: str, cursor: int, replayed: int) -> Message:
    return _message("resumed", _Resumed(epoch, cursor, replayed), Position(epoch, cursor))


def ping(position: Position | None, digest: str | None = None) -> Message:
    return _message("ping", _Ping(position.cursor if position else None, digest if position else None), position)


def with_digest(patch_message: Message, digest: str) -> Message:
    """The same `patch` carrying the state digest at its cursor: its encoded text with one
    member appended (the ops are not encoded again)."""
    assert patch_message.kind == "patch" and patch_message.text.endswith("}")
    text = f'{patch_message.text[:-1]},"digest":"{digest}"}}'
    return Message("patch", text, patch_message.event_id, base=patch_message.base)


def pong() -> Message:
    return _message("pong", _Pong())


def authenticated(expires_at: float) -> Message:
    return _message("authenticated", _Authenticated(int(expires_at)))


def reconnect(delay_ms: int, reason: str = "shutdown") -> Message:
    return _message("reconnect", _Reconnect(reason, delay_ms), retry_ms=delay_ms)


def close_notice(close: Close) -> Message:
    """SSE has no close frame: its last message says how and why it ended."""
    return _message("close", _CloseNotice(int(close.code), close.reason))


# -- agent presence (server -> client; app.live.presence, docs/protocol.md "presence") ----


class _Presence(_Out, tag="presence"):
    """Who is present: the whole list (`present`, replaces yours), or one change
    (`joined` / `left`). `version` counts the account's presence changes."""

    version: int
    present: list[msgspec.Raw] | None = None
    joined: msgspec.Raw | None = None
    left: msgspec.Raw | None = None


def presence_list(version: int, entries: list[bytes]) -> Message:
    return _message("presence", _Presence(version, present=[msgspec.Raw(e) for e in entries]))


def presence_change(version: int, joined: bool, entry: bytes) -> Message:
    raw = msgspec.Raw(entry)
    return _message("presence", _Presence(version, joined=raw) if joined else _Presence(version, left=raw))


# -- GET /live/connections (app.web.connections) ------------------------------------


class ConnectionInfo(msgspec.Struct, rename="camel"):
    connection_id: str
    user_id: str
    endpoint_id: str | None
    transport: str
    cursor: int  # where the server has it: every change up to here was sent or not for it
    acked: int | None  # the last cursor it acknowledged; None: it never sent `ack`
    lag_cursors: int | None  # the account's changes since its acknowledged state (0: it acked all it was sent)
    lag_ms: int | None  # how long the oldest of them has been waiting, since its webhook arrived
    conflations: int  # times its queue conflated


class ConnectionsReply(msgspec.Struct, rename="camel"):
    """The caller's account's live connections on the process that answers."""

    account_id: str
    connections: list[ConnectionInfo]



# -- client -> server ---------------------------------------------------------------


class _In(msgspec.Struct, tag_field="type", forbid_unknown_fields=True):
    pass


class Auth(_In, tag="auth"):
    token: str
    since: str | None = None


class Ping(_In, tag="ping"):
    pass


class Pong(_In, tag="pong"):
    pass


class Ack(_In, tag="ack"):
    """The client has applied its state up to `cursor` (of `epoch`, when given): measured lag."""

    cursor: Annotated[int, msgspec.Meta(ge=0)]
    epoch: str | None = None


Inbound = Auth | Ping | Pong | Ack
_inbound = msgspec.json.Decoder(Inbound)


class ProtocolError(ValueError):
    def __init__(self, close: Close) -> None:
        super().__init__(close.reason)
        self.close = close


def parse_inbound(data: str | bytes, max_bytes: int) -> Inbound:
    """A client message: a text frame (bytes are a binary frame, which the protocol does not use)."""
    if not isinstance(data, str):
        raise ProtocolError(Close.of(CloseCode.BAD_REQUEST, "binary frame; messages are text frames"))
    size = len(data.encode())
    if size > max_bytes:
        raise ProtocolError(Close.of(CloseCode.TOO_BIG, f"{size} > {max_bytes} bytes"))
    try:
        message: Inbound = json_input.decode(data, _inbound)
        return message
    except msgspec.DecodeError as exc:
        raise ProtocolError(Close.of(CloseCode.BAD_REQUEST, str(exc))) from None
