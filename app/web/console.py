"""The console: `GET /` (the page), `/static/*` (its files and the browser
client library, an npm-style package: its package.json and .d.ts declarations
are served too, as plain text and JSON) and, in development only, a token
minting endpoint for a demo user."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Final

import msgspec
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from app.formats import json_input
from app.auth.tokens import mint_token
from app.config import Settings
from app.auth.demo_users import demo_identity
from app.services import services
from app.web.errors import ApiError
from app.web.requests import read_body

STATIC_DIR: Final = Path(__file__).resolve().parent.parent / "static"
DEV_TOKEN_TTL: Final = 3600
# Everything the page needs is served from here: no external assets, no inline code.
PAGE_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; connect-src 'self'; "
                               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class StaticClientFiles(StaticFiles):
    """app/static. Type declarations (`.d.ts`, which Python's mimetypes takes for
    Qt translations) are served as plain text, never as something a browser runs."""

    def file_response(self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        if str(full_path).endswith(".d.ts") and "content-type" in response.headers:
            response.headers["content-type"] = "text/plain; charset=utf-8"
            response.headers["x-content-type-options"] = "nosniff"
        return response


class DevTokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    role: str = "agent"  # "agent" or "manager"


_dev_token_request = msgspec.json.Decoder(DevTokenRequest)


def dev_tokens_enabled(settings: Settings) -> bool:
    return settings.env == "development" and settings.jwt_algorithm == "HS256"


async def page(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


async def console_config(request: Request) -> JSONResponse:
    return JSONResponse({"devTokens": dev_tokens_enabled(services(request).settings)},
                        headers={"Cache-Control": "no-store"})


async def dev_token(request: Request) -> JSONResponse:
    """A signed token for the demo agent or manager. Development only: anywhere
    else this route does not exist (404), so it cannot mint in production."""
    settings = services(request).settings
    if not dev_tokens_enabled(settings):
        raise ApiError(404, "NotFound", "Not found")
    body = await read_body(request, 1024)
    try:
        wanted = json_input.decode(body or b"{}", _dev_token_request)
    except msgspec.DecodeError as exc:
        raise ApiError(400, "ValidationError", f"Invalid request: {exc}") from None
    if wanted.role not in ("agent", "manager"):
        raise ApiError(400, "ValidationError", "role must be 'agent' or 'manager'")
    identity = demo_identity(manager=wanted.role == "manager")
    now = time.time()
    token = mint_token(settings.jwt_verify_key(), ttl_seconds=DEV_TOKEN_TTL, now=now, **identity)
    return JSONResponse({"token": token, "expiresAt": int(now) + DEV_TOKEN_TTL},
                        headers={"Cache-Control": "no-store"})


def routes() -> list[BaseRoute]:
    return [
        Route("/", page, methods=["GET", "HEAD"]),
        Route("/console/config", console_config, methods=["GET"]),
        Route("/console/dev-token", dev_token, methods=["POST"]),
        Mount("/static", app=StaticClientFiles(directory=STATIC_DIR), name="static"),
    ]
