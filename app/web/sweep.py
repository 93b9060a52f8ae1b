"""`GET /sessions/sweep`: what the sweep (app/sweep/) did for the caller's account,
from every process (kept in Redis): sessions taken up, statuses learnt from Twilio,
calls lost, sessions marked stale, errors, and when it last looked. The console
shows it; it is not part of the published `GetActiveSessions` contract."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.auth.tokens import USER, require_role
from app.services import services
from app.sweep.sweeper import account_counts
from app.web.requests import bearer_from_header

_encode = msgspec.json.Encoder().encode


async def sweep_counts(request: Request) -> Response:
    svc = services(request)
    principal = require_role(await svc.authenticate(bearer_from_header(request.headers.get("authorization"))), USER)
    counts = await account_counts(svc.store, principal.account_id, svc.settings.sweep_interval_seconds)
    return Response(_encode(counts), media_type="application/json", headers={"Cache-Control": "private, no-cache"})


def routes() -> list[Route]:
    return [Route("/sessions/sweep", sweep_counts, methods=["GET"])]
