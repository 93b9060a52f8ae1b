"""The ceiling for ingest ("check and store"): a bare Starlette route that verifies the same
Twilio signature with the service's own code (its form parser and checker: PUBLIC_URL + raw
path + query, with and without port, constant time) and does one Redis SET (on a cluster, sent
straight to the master of its key's slot, see bench/baselines/redis_client.py)."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.twilio.callbacks import form_pairs
from app.twilio.signature import is_valid
from bench.baselines.redis_client import Router


def app() -> Starlette:
    redis = Router(os.environ["REDIS_URL"])  # one node, or the master of the key's slot
    tokens = [os.environ["TWILIO_AUTH_TOKEN"]]
    public = os.environ["PUBLIC_URL"].rstrip("/")

    async def status(request: Request) -> Response:
        body = await request.body()
        query = request.scope["query_string"].decode("latin-1")
        url = f"{public}{request.scope['raw_path'].decode('latin-1')}" + (f"?{query}" if query else "")
        params = form_pairs(body)
        if params is None or not is_valid(url, params, request.headers.get("x-twilio-signature"), tokens):
            return Response(status_code=403)
        fields = dict(params)
        key = f"bench:cb:{fields.get('CallSid')}:{fields.get('SequenceNumber')}"
        await redis(key).set(key, body)
        return Response(status_code=204)

    async def live(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return Starlette(routes=[Route("/twilio/status", status, methods=["POST"]), Route("/health/live", live)])
