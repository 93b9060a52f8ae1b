"""ASGI middleware for every HTTP request (SSE and long-poll included): a request id
(the caller's `X-Request-Id` if it is safe, else a fresh one) echoed on the response,
the request context for logs and counters, one access log line, and the reason
for every refused webhook or event batch."""

from __future__ import annotations

import time

import msgspec
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.logs import ACCESS
from app.observability.context import REQUEST_ID_HEADER, RequestContext, enter, leave, request_id_from
from app.observability.tally import TALLY


INGEST_ROUTES = frozenset({"/events", "/twilio/status", "/twilio/conference"})
_ERROR_BODY_MAX = 8192


class _Status(msgspec.Struct):
    errorCode: str = ""  # noqa: N815 - the wire name


class _Error(msgspec.Struct):
    responseStatus: _Status = msgspec.field(default_factory=_Status)  # noqa: N815


_error = msgspec.json.Decoder(_Error)


def error_code(body: bytes) -> str:
    try:
        return _error.decode(body).responseStatus.errorCode or "unknown"
    except msgspec.DecodeError:
        return "unknown"


def streaming_kind(scope: Scope) -> str | None:
    path = scope["path"]
    if path == "/sessions/changes":
        return "long-poll"
    if path == "/sessions/live":
        accept = next((v for k, v in scope["headers"] if k == b"accept"), b"")
        return "sse" if b"text/event-stream" in accept else None
    return None


class AccessMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        presented = next((v for k, v in scope["headers"] if k == REQUEST_ID_HEADER.encode()), None)
        ctx = RequestContext(request_id_from(presented), scope["path"])
        echoed = (REQUEST_ID_HEADER.encode(), ctx.request_id.encode())
        ingest = ctx.route in INGEST_ROUTES
        error_body = bytearray()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                ctx.status = message["status"]
                message["headers"] = [*message.get("headers", ()), echoed]
            elif ingest and ctx.status is not None and ctx.status >= 400 and len(error_body) < _ERROR_BODY_MAX:
                error_body.extend(message.get("body", b""))
            await send(message)

        kind = streaming_kind(scope)
        if kind is not None:
            TALLY.streaming[kind] += 1
        token = enter(ctx)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if kind is not None:
                TALLY.streaming[kind] -= 1
            if ingest and ctx.status is not None and ctx.status >= 400:
                TALLY.rejections[(ctx.route, error_code(bytes(error_body)))] += 1
            duration_ms = round((time.monotonic() - ctx.arrived) * 1000, 3)
            ACCESS.write(scope["method"], scope["path"], ctx.status, duration_ms)
            leave(token)
