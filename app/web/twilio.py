"""`POST /twilio/status` and `POST /twilio/conference`: Twilio's callbacks.

Order matters: bound the body, check `X-Twilio-Signature` against the public
URL Twilio called, and only then parse and apply. 403 stores nothing; 400 names
the bad fields; 204 is sent only once the change is committed (or the callback
is safely kept as a dead letter); Redis down is 503 (see docs/twilio.md for the
URL fragment that makes Twilio retry it).
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.services import Services, services
from app.twilio.callbacks import MAX_BODY_BYTES, CallbackInvalid, form_pairs, parse
from app.twilio.ingest import Ingest, letter_for
from app.twilio.signature import TokenBook, is_valid
from app.web.errors import ApiError
from app.web.requests import read_body

log = logging.getLogger("app.twilio")


class TwilioWebhooks:
    """Built once per app from settings: the tokens and the ingester."""

    def __init__(self, svc: Services) -> None:
        s = svc.settings
        self.tokens = TokenBook.from_settings(s.twilio_auth_token, s.twilio_auth_token_secondary, s.twilio_auth_tokens)
        self.public_url = s.public_url.rstrip("/")
        self.max_body = min(s.max_body_bytes, MAX_BODY_BYTES)
        self.ingest = Ingest(svc.store, s)
        if not self.tokens.configured:
            log.warning("no Twilio auth token configured (TWILIO_AUTH_TOKEN): every callback is refused")

    def url(self, request: Request) -> str:
        """The URL Twilio requested: the configured public base (else this
        request's scheme and Host), then the raw path and query string."""
        base = self.public_url or f"{request.url.scheme}://{request.headers.get('host', '')}"
        path = request.scope.get("raw_path") or request.url.path.encode()
        query = request.scope.get("query_string", b"")
        return base + path.decode("latin-1") + (f"?{query.decode('latin-1')}" if query else "")


def webhooks(request: Request) -> TwilioWebhooks:
    svc = services(request)
    hooks = svc.extras.get("twilio")
    if hooks is None:
        hooks = svc.extras["twilio"] = TwilioWebhooks(svc)
    return hooks


async def receive(request: Request, kind: str) -> Response:
    hooks = webhooks(request)
    body = await read_body(request, hooks.max_body)
    form = form_pairs(body)
    account_sid = next((v for k, v in form or () if k == "AccountSid"), None)
    signature = request.headers.get("x-twilio-signature")
    if form is None or not is_valid(hooks.url(request), form, signature, hooks.tokens.tokens_for(account_sid)):
        log.warning("twilio %s callback refused: %s signature", kind, "bad" if signature else "no")
        raise ApiError(403, "Forbidden", "Missing or invalid X-Twilio-Signature")
    query = request.scope.get("query_string", b"").decode("latin-1")
    try:
        cb = parse(kind, query, form)
    except CallbackInvalid as exc:
        log.warning("twilio %s callback rejected: %s", kind, exc)
        raise ApiError(400, "ValidationError", "Invalid Twilio callback", exc.errors) from None
    await hooks.ingest.handle(letter_for(kind, query, form, cb), cb)
    return Response(status_code=204)


async def status(request: Request) -> Response:
    return await receive(request, "status")


async def conference(request: Request) -> Response:
    return await receive(request, "conference")


def routes() -> list[Route]:
    return [
        Route("/twilio/status", status, methods=["POST"]),
        Route("/twilio/conference", conference, methods=["POST"]),
    ]
