"""`GET /presence`: which endpoints of the caller's account are connected right now
(docs/protocol.md, "Presence"), for clients that poll instead of watching the
live stream's `presence` messages."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.auth.tokens import USER, Forbidden, require_role
from app.domain.ids import ID_RULE, is_id
from app.domain.presence import PresenceReply, sees
from app.domain.visibility import Viewer
from app.services import services
from app.web.errors import ApiError
from app.web.requests import bearer_token

_json = msgspec.json.Encoder()


async def get_presence(request: Request) -> Response:
    svc = services(request)
    principal = require_role(await svc.authenticate(bearer_token(request, svc.origins)), USER)
    viewer = Viewer.of(principal)
    only = request.query_params.get("endpointId")
    if only is not None and not is_id(only):
        raise ApiError(400, "ValidationError", f"'endpointId' must be {ID_RULE}")
    if only is not None and not sees(viewer, only):
        raise Forbidden("Only a Manager or Admin sees other endpoints' presence")
    roster = await svc.presence.roster(viewer)
    entries = [e for e in roster.entries if only is None or e.endpoint_id == only]
    body = _json.encode(PresenceReply(principal.account_id, roster.version, entries))
    return Response(body, media_type="application/json; charset=utf-8", headers={"Cache-Control": "no-store"})


def routes() -> list[Route]:
    return [Route("/presence", get_presence, methods=["GET"])]
