"""Live push routes: `/sessions/live` (WebSocket, or SSE with `Accept:
text/event-stream`) and `GET /sessions/changes` (long-poll). Thin adapters
from Starlette to app.live; docs/protocol.md is the contract."""

from __future__ import annotations

import asyncio
from typing import cast

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.auth import USER, require_role
from app.config import Settings
from app.live.client import Connection, Limits, PeerGone
from app.live.hub import Draining, Hub
from app.live.outbox import Outbox
from app.live.protocol import (
    BadPosition,
    Close,
    CloseCode,
    Message,
    Position,
    close_notice,
    parse_since,
)
from app.live.session import Timing
from app.live.views import Viewer
from app.services import Services, services
from app.web.errors import ApiError
from app.web.requests import bearer_token

_json = msgspec.json.Encoder()
_POLL_KINDS = frozenset({"snapshot", "patch"})


def limits(settings: Settings, two_way: bool) -> Limits:
    return Limits(
        queue_max_bytes=settings.live_queue_max_bytes,
        write_timeout=settings.live_write_timeout,
        max_message_bytes=settings.live_max_message_bytes,
        timing=Timing(
            auth_timeout=settings.live_auth_timeout,
            ping_interval=settings.live_ping_interval,
            pong_timeout=settings.live_pong_timeout if two_way else None,
            token_grace=settings.live_token_grace,
        ),
    )


def _hub(svc: Services) -> Hub | None:
    hub = svc.live
    return hub if hub is not None and hub.running and not hub.draining else None


def _unavailable() -> ApiError:
    return ApiError(503, "ServiceUnavailable", "Live push is not available here; retry (elsewhere)",
                    headers={"Retry-After": "1"})


# -- WebSocket -----------------------------------------------------------------------


class WebSocketTransport:
    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket
        # The raw ASGI send: each frame's event is built once per message and shared by every
        # socket (Message.ws_event); Starlette's state checks add nothing once accepted.
        self._send: Send = websocket._send

    async def send(self, message: Message) -> None:
        try:
            await self._send(message.ws_event())
        except (WebSocketDisconnect, OSError, RuntimeError) as exc:
            raise PeerGone() from exc

    async def receive(self) -> str | bytes | None:
        try:
            event = await self._ws.receive()
        except (WebSocketDisconnect, OSError, RuntimeError):
            return None
        if event["type"] == "websocket.disconnect":
            return None
        text = event.get("text")
        return cast(str, text) if text is not None else cast(bytes, event.get("bytes") or b"")

    async def close(self, close: Close) -> None:
        await self._ws.close(int(close.code), close.reason)


async def live_socket(websocket: WebSocket) -> None:
    svc = services(websocket)
    hub = _hub(svc)
    if hub is None:
        await websocket.send_denial_response(Response(status_code=503, headers={"Retry-After": "1"}))
        return
    await websocket.accept()
    connection = Connection(hub, svc.authenticate, limits(svc.settings, two_way=True), WebSocketTransport(websocket))
    await connection.run(bearer_token(cast(Request, websocket)), websocket.query_params.get("since"))


# -- SSE -------------------------------------------------------------------------------


class EventStreamTransport:
    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send

    async def send(self, message: Message) -> None:
        try:
            await self._send(message.sse_event())
        except OSError as exc:
            raise PeerGone() from exc

    async def receive(self) -> str | bytes | None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        return None

    async def close(self, close: Close) -> None:
        await self.send(close_notice(close))


class EventStream(Response):
    """`text/event-stream` driven by a live Connection until it ends."""

    def __init__(self, svc: Services, hub: Hub, token: str | None, since: str | None) -> None:
        super().__init__(media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._svc, self._hub, self._token, self._since = svc, hub, token, since

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]  # a stream: no length
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        transport = EventStreamTransport(receive, send)
        connection = Connection(self._hub, self._svc.authenticate, limits(self._svc.settings, two_way=False), transport)
        await connection.run(self._token, self._since)
        try:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass


async def live_events(request: Request) -> Response:
    if "text/event-stream" not in request.headers.get("accept", ""):
        raise ApiError(406, "NotAcceptable", "Use a WebSocket upgrade, or Accept: text/event-stream")
    svc = services(request)
    token = bearer_token(request)
    require_role(svc.authenticate(token), USER)  # refuse with a plain 401/403 before streaming
    since = request.headers.get("last-event-id") or request.query_params.get("since")
    _position(since)
    hub = _hub(svc)
    if hub is None:
        raise _unavailable()
    return EventStream(svc, hub, token, since)


# -- long-poll -------------------------------------------------------------------------


async def changes(request: Request) -> Response:
    """Patches since `since`, or a reset snapshot, or nothing after `wait` seconds."""
    svc = services(request)
    principal = require_role(svc.authenticate(bearer_token(request)), USER)
    since = _position(request.query_params.get("since"))
    wait = _wait(request.query_params.get("wait"), svc.settings.live_poll_max_wait)
    hub = _hub(svc)
    if hub is None:
        raise _unavailable()
    outbox = Outbox(svc.settings.live_queue_max_bytes)
    hub.track(outbox)
    try:
        try:
            sub = await hub.open(Viewer.of(principal), outbox, since)
        except Draining:
            raise _unavailable() from None
        try:
            messages = await _collect(outbox, wait)
            if outbox.closing is not None and outbox.closing.code != CloseCode.SHUTDOWN:
                raise _unavailable()
            epoch, cursor = sub.epoch, sub.cursor  # read with the drain: nothing queued is newer
        finally:
            await hub.close(sub)
    finally:
        hub.untrack(outbox)
    body = b'{"epoch":%s,"cursor":%d,"messages":[%s]}' % (
        _json.encode(epoch), cursor, ",".join(m.text for m in messages).encode())
    return Response(body, media_type="application/json; charset=utf-8", headers={"Cache-Control": "no-store"})


async def _collect(outbox: Outbox, wait: float) -> list[Message]:
    messages = [m for m in outbox.drain() if m.kind in _POLL_KINDS]
    if messages or wait <= 0:
        return messages
    try:
        async with asyncio.timeout(wait):
            while not messages and outbox.closing is None:
                await outbox.wait()
                messages = [m for m in outbox.drain() if m.kind in _POLL_KINDS]
    except TimeoutError:
        pass
    return messages + [m for m in outbox.drain() if m.kind in _POLL_KINDS]


def _position(text: str | None) -> Position | None:
    try:
        return parse_since(text)
    except BadPosition as exc:
        raise ApiError(400, "ValidationError", str(exc)) from None


def _wait(text: str | None, cap: float) -> float:
    if text is None or text == "":
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise ApiError(400, "ValidationError", "'wait' must be a number of seconds") from None
    return max(0.0, min(value, cap))


def routes() -> list[Route | WebSocketRoute]:
    return [
        WebSocketRoute("/sessions/live", live_socket),
        Route("/sessions/live", live_events, methods=["GET"]),
        Route("/sessions/changes", changes, methods=["GET"]),
    ]
