"""Request helpers shared by routes: credentials, bounded bodies."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from app.web.errors import ApiError
from app.web.origins import OriginPolicy


def bearer_from_header(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value, if that is what it is."""
    scheme, _, value = (authorization or "").partition(" ")
    token = value.strip()
    return token if scheme.lower() == "bearer" and token else None


def bearer_token(request: Request, origins: OriginPolicy) -> str | None:
    """`Authorization: Bearer <token>`, else the `ss-tok` cookie (ServiceStack's order), the
    cookie only from the service's own pages and the allowed origins (403 otherwise)."""
    token, from_cookie = bearer_credential(request)
    origins.check_cookie_credential(request.scope, from_cookie)
    return token


def bearer_credential(request: Request) -> tuple[str | None, bool]:
    """`bearer_token`, and whether it came from the cookie (which any page can make a browser send)."""
    header = bearer_from_header(request.headers.get("authorization"))
    if header is not None:
        return header, False
    cookie = request.cookies.get("ss-tok") or None
    return cookie, cookie is not None


def require_json(request: Request) -> None:
    """415 unless the body is declared JSON (`application/json`, parameters allowed): a
    form or `text/plain` post is what a cross-site page can send without a preflight."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(415, "UnsupportedMediaType", "Content-Type must be application/json")


def too_large(limit: int) -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", f"Body exceeds {limit} bytes")


async def receive_body(receive: Receive, declared: str | bytes | None, limit: int) -> bytes:
    """The body from a raw ASGI `receive`, refusing (413) anything over `limit`
    bytes (by its declared Content-Length, else as it arrives) without buffering it all."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away (as Request.stream() says it)
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_body(request: Request, limit: int) -> bytes:
    """`receive_body` for a Starlette request."""
    return await receive_body(request.receive, request.headers.get("content-length"), limit)
