"""Live push routes: `/sessions/live` (WebSocket, or SSE with `Accept:
text/event-stream`) and `GET /sessions/changes` (long-poll). Thin adapters
from Starlette to app.live; docs/protocol.md is the contract."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any, cast

import msgspec
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from app.auth.tokens import USER, require_role
from app.live.client import Connection, PeerGone
from app.live.hub import Draining, Hub
from app.live.outbox import Outbox
from app.live.protocol import Close, CloseCode, Message, close_notice
from app.domain.positions import BadPosition, Position, parse_since
from app.live.views import Viewer
from app.services import Services, services
from app.web import direct, errors
from app.web.errors import ApiError
from app.web.requests import bearer_credential

_json = msgspec.json.Encoder()
_POLL_KINDS = frozenset({"snapshot", "patch"})


def _hub(svc: Services) -> Hub | None:
    hub = svc.live
    return hub if hub.running and not hub.draining else None


def _unavailable() -> ApiError:
    return ApiError(503, "ServiceUnavailable", "Live push is not available here; retry (elsewhere)",
                    headers={"Retry-After": "1"})


# -- WebSocket -----------------------------------------------------------------------


class WebSocketTransport:
    """The raw ASGI receive/send of one accepted socket: no Starlette `WebSocket`, whose
    state checks add nothing once accepted and whose scope views would live as long as it."""

    __slots__ = ("_receive", "_send")

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send

    async def send(self, message: Message) -> None:
        # Each frame's event is built once per message and shared by every socket (Message.ws_event).
        try:
            await self._send(message.ws_event())
        except (OSError, RuntimeError) as exc:  # uvicorn's ClientDisconnected is an OSError
            raise PeerGone() from exc

    async def receive(self) -> str | bytes | None:
        try:
            event = await self._receive()
        except (OSError, RuntimeError):
            return None
        if event["type"] != "websocket.receive":
            return None  # websocket.disconnect
        text = event.get("text")
        return cast(str, text) if text is not None else cast(bytes, event.get("bytes") or b"")

    async def close(self, close: Close) -> None:
        await self._send({"type": "websocket.close", "code": int(close.code), "reason": close.reason})


_ACCEPT = {"type": "websocket.accept"}


async def live_socket(scope: Scope, receive: Receive, send: Send) -> None:
    """`/sessions/live` as a WebSocket: a plain ASGI app, which app.composition sends the handshake
    to without Starlette's routing and middleware, so that nothing of theirs (coroutine
    frames, scope copies, the `WebSocket` object) is kept for the life of the connection.
    A handshake refused before accept gets an HTTP denial with the usual `responseStatus`
    body (503 while the hub is not running or drains), as the exception handlers would send."""
    if (await receive())["type"] != "websocket.connect":
        return  # gone before the handshake reached the app
    try:
        svc: Services = scope["app"].state.services
        hub = _hub(svc)
        if hub is None:
            raise _unavailable()
        token, since, watch = _credentials(scope, svc)
        transport = WebSocketTransport(receive, send)
        connection = Connection(hub, svc.authenticate, svc.live_limits.socket, transport,
                                attendance=svc.presence.attendance(watch))
    except Exception as exc:  # noqa: BLE001 - refused as the app's handlers refuse HTTP
        await deny_handshake(scope, send, exc)
        return
    await send(_ACCEPT)
    forget_handshake(scope)
    # Credentials are read here and passed on, not kept: run() drops them once used, and this
    # frame, which lives as long as the socket, lets go of them before it waits.
    serving = connection.run(token, since)
    del token, since
    await serving


# What an accepted socket's scope keeps: which connection it is, for whoever looks at it.
_KEPT = ("type", "scheme", "server", "client", "path", "app")


def forget_handshake(scope: Scope) -> None:
    """Once the socket is accepted nothing reads the handshake's scope again (the server's
    protocol only reads it up to the accept), but the scope lives as long as the socket (the
    server's protocol and every frame below it keep it): keep only which connection it is.
    The headers (the credential among them), query, ASGI and extension dicts go: about 2.2 KiB
    per idle socket (tracemalloc; bench/README.md, "Issue 14: memory per idle socket")."""
    kept = {key: scope[key] for key in _KEPT if key in scope}
    scope.clear()  # and its table: a smaller one is made for what is kept
    scope.update(kept)


class _Handshake(HTTPConnection):
    """A throwaway Starlette view of a WebSocket handshake (an HTTP GET), for the request
    helpers and error handlers; nothing keeps it once the socket is accepted."""

    method = "GET"


def _credentials(scope: Scope, svc: Services) -> tuple[str | None, str | None, bool]:
    """The token (header, else cookie), `since` and `presence` of a handshake."""
    conn = _Handshake(scope)
    return _token(cast(Request, conn), svc), conn.query_params.get("since"), _presence(conn)


def _presence(conn: HTTPConnection) -> bool:
    """`?presence=1`: the connection also gets `presence` messages (docs/protocol.md)."""
    value = conn.query_params.get("presence", "0").lower()
    if value not in ("0", "1", "true", "false"):
        raise ApiError(400, "ValidationError", "'presence' must be 1 or 0 (true or false)")
    return value in ("1", "true")


def _token(request: Request, svc: Services) -> str | None:
    """The bearer token; a cookie sent by another site's page is refused (403, app.web.origins)."""
    token, from_cookie = bearer_credential(request)
    svc.origins.check_cookie_credential(request.scope, from_cookie)
    return token


async def deny_handshake(scope: Scope, send: Send, exc: Exception) -> None:
    """An exception before accept, as an HTTP response to the handshake: the handler the
    app registered for it (ApiError, AuthError, store down: `responseStatus`), else 500."""
    request = cast(Request, _Handshake(scope))
    # The handler is looked up in the app's public `exception_handlers` (`direct.handler_for`):
    # Starlette's public ExceptionMiddleware would pass the handlers a `WebSocket`, which has
    # no `.method` for their log lines.
    handler = direct.handler_for(exc, scope["app"].exception_handlers) or errors.unexpected
    response: Response = await handler(request, exc)
    await response(scope, _no_body, send)  # a `websocket.http.response.*` denial


async def _no_body() -> MutableMapping[str, Any]:
    return {"type": "websocket.disconnect", "code": 1000}


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

    def __init__(self, svc: Services, hub: Hub, token: str | None, since: str | None, watch: bool = False) -> None:
        super().__init__(media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._svc, self._hub, self._token, self._since, self._watch = svc, hub, token, since, watch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]  # a stream: no length
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        transport = EventStreamTransport(receive, send)
        connection = Connection(self._hub, self._svc.authenticate, self._svc.live_limits.stream, transport,
                                attendance=self._svc.presence.attendance(self._watch))
        await connection.run(self._token, self._since)
        try:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass


async def live_events(request: Request) -> Response:
    if "text/event-stream" not in request.headers.get("accept", ""):
        raise ApiError(406, "NotAcceptable", "Use a WebSocket upgrade, or Accept: text/event-stream")
    svc = services(request)
    token = _token(request, svc)
    require_role(await svc.authenticate(token), USER)  # refuse with a plain 401/403 before streaming
    since = request.headers.get("last-event-id") or request.query_params.get("since")
    _position(since)
    watch = _presence(request)
    hub = _hub(svc)
    if hub is None:
        raise _unavailable()
    return EventStream(svc, hub, token, since, watch)


# -- long-poll -------------------------------------------------------------------------


async def changes(request: Request) -> Response:
    """Patches since `since`, or a reset snapshot, or nothing after `wait` seconds."""
    svc = services(request)
    principal = require_role(await svc.authenticate(_token(request, svc)), USER)
    since = _position(request.query_params.get("since"))
    wait = _wait(request.query_params.get("wait"), svc.settings.live_poll_max_wait)
    wants_digest = _flag(request.query_params.get("digest"), "digest")
    hub = _hub(svc)
    if hub is None:
        raise _unavailable()
    outbox = Outbox(svc.settings.live_queue_max_bytes)
    hub.track(outbox)
    try:
        try:
            sub = await hub.open(Viewer.of(principal), outbox, since, digest=wants_digest)
        except Draining:
            raise _unavailable() from None
        try:
            messages = await _collect(outbox, wait)
            if outbox.closing is not None and outbox.closing.code != CloseCode.SHUTDOWN:
                raise _unavailable()
            epoch, cursor, state = sub.epoch, sub.cursor, sub.digest_text  # read with the drain: nothing queued is newer
        finally:
            await hub.close(sub)
    finally:
        hub.untrack(outbox)
    digest = b',"digest":"%s"' % state.encode() if state is not None else b""
    body = b'{"epoch":%s,"cursor":%d%s,"messages":[%s]}' % (
        _json.encode(epoch), cursor, digest, ",".join(m.text for m in messages).encode())
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


def _flag(text: str | None, name: str) -> bool:
    if text in (None, "", "0"):
        return False
    if text == "1":
        return True
    raise ApiError(400, "ValidationError", f"'{name}' must be 1 or 0")


def _wait(text: str | None, cap: float) -> float:
    if text is None or text == "":
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise ApiError(400, "ValidationError", "'wait' must be a number of seconds") from None
    return max(0.0, min(value, cap))


def routes() -> list[Route]:
    return [
        # The WebSocket on this path is `live_socket`, dispatched by app.composition before Starlette.
        Route("/sessions/live", live_events, methods=["GET"]),
        Route("/sessions/changes", changes, methods=["GET"]),
    ]
