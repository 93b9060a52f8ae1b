"""Liveness and readiness."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.services import services


async def health(request: Request) -> JSONResponse:
    """Readiness: 200 when Redis answers and (on a cluster) every slot has a
    reachable master, else 503 (the process is still live)."""
    state = await services(request).store.health()
    ready = bool(state.get("redis"))
    return JSONResponse({"status": "ok" if ready else "unavailable", "live": True, **state},
                        status_code=200 if ready else 503)


async def live(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "live": True})


def routes() -> list[Route]:
    return [
        Route("/health", health, methods=["GET"]),
        Route("/health/ready", health, methods=["GET"]),
        Route("/health/live", live, methods=["GET"]),
    ]
