"""`GetActiveSessions` (and the older `GetMySessions`) on every route ServiceStack serves."""

from __future__ import annotations

from typing import Final

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.auth.tokens import USER, require_role
from app.formats import Format, negotiate, render
from app.domain.dtos import GetActiveSessionsResponse, SessionInfo
from app.domain.positions import Position, etag_matches
from app.services import Services, services
from app.web.snapshot_cache import Snapshot, key_for
from app.domain.visibility import Viewer, visible_sessions
from app.web.errors import ApiError, request_format
from app.web.requests import bearer_from_header, bearer_token

OPERATIONS: Final = {"getactivesessions": "GetActiveSessions", "getmysessions": "GetMySessions"}
FORMATS: Final = ("json", "xml", "jsv", "csv")
_decode_session = msgspec.json.Decoder(SessionInfo).decode
CACHE_CONTROL: Final = "private, no-cache"
READ_PATH: Final = "/sessions/active"  # the most frequent request: served beside the router (app.web.direct)


def _operation(request: Request) -> str:
    op = request.path_params.get("op")
    if op is None:
        return "GetActiveSessions"
    fmt_segment = request.path_params.get("fmt")
    if fmt_segment is not None and fmt_segment.lower() not in FORMATS:
        raise ApiError(404, "NotFound", f"Unknown format {fmt_segment!r}")
    _, path = negotiate(None, "/" + op, None, None)
    name = OPERATIONS.get(path.lstrip("/").lower())
    if name is None:
        raise ApiError(404, "NotFound", f"Unknown operation {op!r}")
    return name


_ROUTED_MAX: Final = 1024
_routed: dict[tuple[str, str, bytes, bytes | None, bytes | None], tuple[str, Format]] = {}


class _Wanted:
    """The request headers a read looks at, found in one pass over the raw list
    (the first of each, as `request.headers.get` would)."""

    __slots__ = ("accept", "content_type", "authorization", "if_none_match")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.accept: bytes | None = None
        self.content_type: bytes | None = None
        self.authorization: bytes | None = None
        self.if_none_match: bytes | None = None
        for name, value in raw:
            if name == b"authorization":
                self.authorization = self.authorization or value
            elif name == b"accept":
                self.accept = self.accept or value
            elif name == b"if-none-match":
                self.if_none_match = self.if_none_match or value
            elif name == b"content-type":
                self.content_type = self.content_type or value


def _operation_and_format(request: Request, wanted: _Wanted) -> tuple[str, Format]:
    """`_operation` and `request_format`, remembered per (path, query, Accept,
    Content-Type): clients repeat the same request, and negotiation is a
    good part of a cached read's cost. Errors are never remembered."""
    scope = request.scope
    key = (scope.get("root_path", ""), scope["path"], scope["query_string"], wanted.accept, wanted.content_type)
    found = _routed.get(key)
    if found is None:
        found = _operation(request), request_format(request)
        if len(_routed) >= _ROUTED_MAX:
            _routed.clear()
        _routed[key] = found
    return found


def _token(request: Request, wanted: _Wanted, svc: Services) -> str | None:
    """`bearer_credential`, without building the header map for the usual case; the cookie
    only from the service's own pages and the allowed origins (app.web.origins)."""
    if wanted.authorization is not None:
        token = bearer_from_header(wanted.authorization.decode("latin-1"))
        if token is not None:
            return token
    return bearer_token(request, svc.origins)


async def get_active_sessions(request: Request) -> Response:
    wanted = _Wanted(request.scope["headers"])
    op_name, fmt = _operation_and_format(request, wanted)
    svc = services(request)
    principal = require_role(await svc.authenticate(_token(request, wanted, svc)), USER)
    if_none_match = wanted.if_none_match.decode("latin-1") if wanted.if_none_match is not None else None
    reads = svc.reads
    # The account's position now (batched with every other read this turn),
    # read after this request arrived: a snapshot at it is current.
    position = await reads.positions.position(principal.account_id)
    if position.epoch is not None and if_none_match is not None:
        etag = position.etag(_variant(fmt))
        if etag_matches(if_none_match, etag):
            return _not_modified(etag)
    key = key_for(principal, fmt, op_name)
    snap = reads.snapshots.cached(key, position) or await reads.snapshots.get(
        key, position, lambda: _build(svc, key.viewer, fmt, op_name))
    # ETag: the change-log position the view is current at (per format); 304 while unchanged.
    if etag_matches(if_none_match, snap.etag):
        return _not_modified(snap.etag)
    return _Prebuilt(snap)


def _variant(fmt: str) -> str:
    return "" if fmt == "json" else fmt


def _not_modified(etag: str) -> Response:
    return Response(status_code=304, headers={"ETag": etag, "Cache-Control": CACHE_CONTROL})


async def _build(svc: Services, viewer: Viewer, fmt: Format, op_name: str) -> Snapshot:
    """A fresh view from Redis, rendered: the uncached path."""
    view = await svc.store.view(viewer.account_id, viewer.endpoint_id, viewer.whole_account)
    visible = list(visible_sessions(viewer, view.sessions).values())
    if fmt == "json":
        # Stored blobs already are the JSON wire form: splice, don't re-encode.
        body = b'{"sessions":[' + b",".join(visible) + b"]}"
        media_type, extra = "application/json; charset=utf-8", {}
    else:
        out = render(fmt, GetActiveSessionsResponse(sessions=[_decode_session(raw) for raw in visible]), op_name)
        body, extra = out.body, out.headers
        # What Starlette's Response would send for this media type.
        media_type = out.media_type
        if media_type.startswith("text/") and "charset=" not in media_type.lower():
            media_type += "; charset=utf-8"
    position = Position(view.epoch, view.cursor)
    etag = position.etag(_variant(fmt))
    headers = {**extra, "ETag": etag, "Cache-Control": CACHE_CONTROL}
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw += [(b"content-length", str(len(body)).encode()), (b"content-type", media_type.encode("latin-1"))]
    return Snapshot(position, body, etag, tuple(raw))


class _Prebuilt(Response):
    """A 200 whose body and headers were rendered once, when the snapshot was built.

    A reach-in past Starlette's public API: it sets the attributes `Response.__call__` sends
    (`status_code`, `raw_headers`, `body`, `background`) instead of calling `Response.__init__`,
    which would rebuild and re-encode the same headers on every cached read: 13.7 vs 1.5 µs
    per response on this machine (timeit, Starlette 1.10). tests/web/test_sessions.py
    (`test_prebuilt_response_sends_what_starlette_would`) runs it through the real Starlette
    against a `Response` built the public way, so an upgrade that changes what `__call__`
    reads fails loudly."""

    def __init__(self, snap: Snapshot) -> None:
        self.status_code = 200
        self.background = None
        self.body = snap.body
        self.raw_headers = list(snap.raw_headers)


def routes() -> list[Route]:
    both = ["GET", "POST"]
    return [
        Route(READ_PATH, get_active_sessions, methods=["GET"]),  # HEAD comes here; GET goes direct
        Route("/sessions/active.{ext}", get_active_sessions, methods=["GET"]),
        Route("/sessions/my", get_active_sessions, methods=["GET"]),
        Route("/sessions/my.{ext}", get_active_sessions, methods=["GET"]),
        Route("/api/{op}", get_active_sessions, methods=both),
        Route("/{fmt}/reply/{op}", get_active_sessions, methods=both),
    ]
