"""The ceiling for snapshot reads: the exact bytes `GET /sessions/active` returned to each
user, served from memory by a bare Starlette route (looked up by the Authorization header)."""

from __future__ import annotations

import base64
import json
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def app() -> Starlette:
    with open(os.environ["BENCH_SNAPSHOTS"]) as f:
        bodies = {k: base64.b64decode(v) for k, v in json.load(f).items()}

    async def active(request: Request) -> Response:
        body = bodies.get(request.headers.get("authorization", ""))
        if body is None:
            return Response(status_code=401)
        return Response(body, media_type="application/json; charset=utf-8")

    async def live(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return Starlette(routes=[Route("/sessions/active", active), Route("/health/live", live)])
