"""`GET /live/connections`: the caller's account's live connections on the process that
answers, each with its acknowledged position and lag (docs/protocol.md,
"Acknowledgements"), for the console. Managers and Admins only."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.auth.tokens import USER, Forbidden, require_role
from app.live.protocol import ConnectionInfo, ConnectionsReply
from app.services import services
from app.web.requests import bearer_token


_json = msgspec.json.Encoder()


async def get_connections(request: Request) -> Response:
    svc = services(request)
    principal = require_role(await svc.authenticate(bearer_token(request, svc.origins)), USER)
    if not principal.sees_whole_account:
        raise Forbidden("Only a Manager or Admin sees the account's connections")
    rows = []
    for sub, lag in svc.live.connections(principal.account_id):
        assert sub.who is not None
        rows.append(ConnectionInfo(
            sub.who.connection_id, sub.who.user_id, sub.who.endpoint_id, sub.who.transport, sub.cursor,
            sub.acked if sub.acked >= 0 else None, lag.cursors if lag else None, lag.ms if lag else None,
            sub.outbox.conflations))
    rows.sort(key=lambda r: (r.user_id, r.connection_id))
    body = _json.encode(ConnectionsReply(principal.account_id, rows))
    return Response(body, media_type="application/json; charset=utf-8", headers={"Cache-Control": "no-store"})


def routes() -> list[Route]:
    return [Route("/live/connections", get_connections, methods=["GET"])]
