"""`GetActiveSessions` (and the older `GetMySessions`) on every route ServiceStack serves."""

from __future__ import annotations

from typing import Final

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.auth import USER, Principal, require_role
from app.formats import negotiate, render
from app.live.protocol import Position, etag_matches
from app.models import GetActiveSessionsResponse, SessionInfo
from app.services import services
from app.store import View
from app.visibility import can_see, decode_scope
from app.web.errors import ApiError, request_format
from app.web.requests import bearer_token

OPERATIONS: Final = {"getactivesessions": "GetActiveSessions", "getmysessions": "GetMySessions"}
FORMATS: Final = ("json", "xml", "jsv", "csv")
_decode_session = msgspec.json.Decoder(SessionInfo).decode


def visible_sessions(principal: Principal, view: View) -> list[bytes]:
    """The view's sessions (stored wire JSON) the principal may see, oldest
    first. The index already scopes them; re-checking the rule here keeps a
    stale index from ever leaking a session."""
    pairs = [(scope, raw) for raw in view.sessions if can_see(principal, scope := decode_scope(raw))]
    pairs.sort(key=lambda p: (p[0].date_created or "", p[0].id or ""))
    return [raw for _, raw in pairs]


async def active_sessions_for(request: Request) -> tuple[Principal, View, list[bytes]]:
    svc = services(request)
    principal = require_role(svc.authenticate(bearer_token(request)), USER)
    view = await svc.store.view(principal.account_id, principal.endpoint_id, principal.sees_whole_account)
    return principal, view, visible_sessions(principal, view)


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


async def get_active_sessions(request: Request) -> Response:
    op_name = _operation(request)
    fmt = request_format(request)
    _, view, visible = await active_sessions_for(request)
    # ETag: the change-log position the view is current at (per format); 304 while unchanged.
    etag = Position(view.epoch, view.cursor).etag("" if fmt == "json" else fmt)
    cache = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=cache)
    if fmt == "json":
        # Stored blobs already are the JSON wire form: splice, don't re-encode.
        body = b'{"sessions":[' + b",".join(visible) + b"]}"
        return Response(body, media_type="application/json; charset=utf-8", headers=cache)
    out = render(fmt, GetActiveSessionsResponse(sessions=[_decode_session(raw) for raw in visible]), op_name)
    return Response(out.body, media_type=out.media_type, headers={**out.headers, **cache})


def routes() -> list[Route]:
    both = ["GET", "POST"]
    return [
        Route("/sessions/active", get_active_sessions, methods=["GET"]),
        Route("/sessions/active.{ext}", get_active_sessions, methods=["GET"]),
        Route("/sessions/my", get_active_sessions, methods=["GET"]),
        Route("/sessions/my.{ext}", get_active_sessions, methods=["GET"]),
        Route("/api/{op}", get_active_sessions, methods=both),
        Route("/{fmt}/reply/{op}", get_active_sessions, methods=both),
    ]
