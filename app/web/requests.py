"""Request helpers shared by routes: credentials, bounded bodies."""

from __future__ import annotations

from starlette.requests import Request

from app.web.errors import ApiError


def bearer_token(request: Request) -> str | None:
    """`Authorization: Bearer <token>`, else the `ss-tok` cookie (ServiceStack's order)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get("ss-tok") or None


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (413) anything over `limit` bytes without buffering it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "RequestEntityTooLarge", f"Body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "RequestEntityTooLarge", f"Body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
