"""`POST /events`: the platform's own events, validated whole, applied once each.

The route checks the caller and the body (key, content type, size), parses the
batch (`app.domain.platform_events`), hands it to the use case
(`app.ingest.events`, built once in `app.composition`) and renders its reply.
An invalid batch (`BatchInvalid`) is a 400 in `app.web.errors`."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.auth.tokens import api_key_matches
from app.domain.platform_events import parse_batch
from app.services import services
from app.web.errors import ApiError
from app.web.requests import bearer_from_header, read_body, require_json

_json = msgspec.json.Encoder()


async def post_events(request: Request) -> Response:
    svc = services(request)
    # The key is a server's credential: from the Authorization header only, never a cookie.
    if not api_key_matches(bearer_from_header(request.headers.get("authorization")), svc.settings.events_api_key):
        raise ApiError(401, "Unauthorized", "A valid events API key is required",
                       headers={"WWW-Authenticate": 'Bearer realm="/events"'})
    require_json(request)
    body = await read_body(request, svc.settings.max_body_bytes)
    result = await svc.events.handle(parse_batch(body, svc.settings.max_events_per_batch))
    return Response(_json.encode(result), media_type="application/json; charset=utf-8")


def routes() -> list[Route]:
    return [Route("/events", post_events, methods=["POST"])]
