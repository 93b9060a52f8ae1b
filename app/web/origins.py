"""Which web origins may use the service from a browser: the Origin check on cookie
credentials (cross-site WebSocket hijacking) and CORS for the browser client.

A browser sends the `ss-tok` cookie with any request to the service, whichever page
makes it, and a WebSocket handshake is not protected by the same-origin policy. So a
request whose only credential is the cookie is refused (403) when it carries an
`Origin` that is neither the service's own nor in `ALLOWED_ORIGINS`. No `Origin` (a
non-browser client) and credentials in the `Authorization` header or the first
WebSocket message are unaffected: a page cannot make a browser send those for it.

CORS (no credentials: the client sends its token in a header) is answered for the
allowed origins on the client module and the SSE and long-poll routes only."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Settings
from app.config_rules import origin_of, parse_origins
from app.web.errors import ApiError

COOKIE: Final = "ss-tok"
CORS_PATHS: Final = frozenset({
    "/static/sessions-client.js", "/static/json-patch.js", "/static/live-transports.js",
    "/sessions/live", "/sessions/changes",
})
_HTTP_SCHEME: Final = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


class OriginPolicy:
    def __init__(self, settings: Settings) -> None:
        self.allowed = parse_origins(settings.allowed_origins)
        self._own = origin_of(settings.public_url) if settings.public_url else None

    def own_origins(self, scope: Scope) -> set[str]:
        """The service's own origin: PUBLIC_URL's, and the one this request was sent to."""
        own = {self._own} if self._own else set()
        host = Headers(scope=scope).get("host")
        if host:
            try:
                own.add(origin_of(f"{_HTTP_SCHEME.get(scope.get('scheme', 'http'), 'http')}://{host}"))
            except ValueError:
                pass
        return own

    def allows(self, origin: str, scope: Scope) -> bool:
        try:
            origin = origin_of(origin)
        except ValueError:
            return False  # "null" (sandboxed frames, file:) or garbage
        return origin in self.allowed or origin in self.own_origins(scope)

    def check_cookie_credential(self, scope: Scope, used_cookie: bool) -> None:
        """403 when the request's credential is the cookie and a foreign page sent it."""
        origin = Headers(scope=scope).get("origin")
        if used_cookie and origin is not None and not self.allows(origin, scope):
            raise ApiError(403, "Forbidden", "Cookie credentials are not accepted from this origin; "
                           "send the token in the Authorization header or the first message")


class ClientCors:
    """CORS for the allowed origins, on CORS_PATHS only; every other path as it was."""

    def __init__(self, app: ASGIApp, origins: Iterable[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app, allow_origins=sorted(origins), allow_methods=["GET"],
            allow_headers=["Authorization", "Accept", "Last-Event-ID", "Cache-Control"],
            expose_headers=["ETag"], allow_credentials=False, max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in CORS_PATHS:
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
