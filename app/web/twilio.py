"""`POST /twilio/status` and `POST /twilio/conference`: Twilio's callbacks.

Order matters: bound the body, check `X-Twilio-Signature` against the public
URL Twilio called, and only then parse and apply. 403 stores nothing; 400 names
the bad fields; 204 is sent only once the change is committed (or the callback
is safely kept as a dead letter); Redis down is 503 (see docs/twilio.md for the
URL fragment that makes Twilio retry it).

The two routes are plain ASGI endpoints (the hot ingest path: no Request,
form or Response objects). Errors are raised as usual (`ApiError`, `CallbackInvalid`,
`StoreUnavailable`) before anything is sent, so the app's exception handlers
answer them with the same `responseStatus` bodies as every other route.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from app.config import Settings
from app.storage.session_store import SessionStore
from app.twilio.callbacks import MAX_BODY_BYTES, form_pairs, parse
from app.twilio.ingest import Ingest, letter_for
from app.twilio.signature import TokenBook, base_variants, matches, url_variants
from app.web.errors import ApiError
from app.web.requests import receive_body

log = logging.getLogger("app.twilio")


class TwilioWebhooks:
    """Built once per app (`app.composition.build_services`): the tokens and the ingester."""

    def __init__(self, store: SessionStore, s: Settings) -> None:
        self.tokens = TokenBook.from_settings(s.twilio_auth_token, s.twilio_auth_token_secondary, s.twilio_auth_tokens)
        self.public_url = s.public_url.rstrip("/")
        self.public_variants = base_variants(self.public_url) if self.public_url else None
        self.max_body = min(s.max_body_bytes, MAX_BODY_BYTES)
        self.ingest = Ingest(store, s)
        if not self.tokens.configured:
            log.warning("no Twilio auth token configured (TWILIO_AUTH_TOKEN): every callback is refused")

    def candidates(self, scope: Scope, host: str) -> tuple[str, ...]:
        """The URL Twilio requested, with and without its port (see `url`);
        from PUBLIC_URL's variants, computed once, when it is set."""
        if self.public_variants is None:
            try:
                return url_variants(self.url(scope, host))
            except ValueError:  # e.g. a port that is not a number: nothing can match
                return ()
        rest = self.url(scope, host)[len(self.public_url):]
        bare, ported = self.public_variants
        return (bare + rest, ported + rest)

    def url(self, scope: Scope, host: str) -> str:
        """The URL Twilio requested: the configured public base (else this
        request's scheme and Host), then the raw path and query string."""
        base = self.public_url or f"{scope.get('scheme', 'http')}://{host}"
        path: bytes = scope.get("raw_path") or scope["path"].encode()
        query: bytes = scope.get("query_string", b"")
        return base + path.decode("latin-1") + (f"?{query.decode('latin-1')}" if query else "")


class Webhook:
    """One of the two routes, as a plain ASGI app."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.__name__ = kind  # the route's name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = self.kind
        hooks: TwilioWebhooks = scope["app"].state.services.twilio
        declared = signature = None
        host = ""
        for name, value in scope["headers"]:  # the first of each, as Request.headers.get gives
            if name == b"x-twilio-signature":
                if signature is None:
                    signature = value.decode("latin-1")
            elif name == b"content-length":
                if declared is None:
                    declared = value
            elif name == b"host":
                if not host:
                    host = value.decode("latin-1")
        body = await receive_body(receive, declared, hooks.max_body)
        form = form_pairs(body)
        account_sid = next((v for k, v in form or () if k == "AccountSid"), None)
        if form is None or not matches(hooks.candidates(scope, host), form, signature,
                                       hooks.tokens.tokens_for(account_sid)):
            log.warning("twilio %s callback refused: %s signature", kind, "bad" if signature else "no")
            raise ApiError(403, "Forbidden", "Missing or invalid X-Twilio-Signature")
        query = scope.get("query_string", b"").decode("latin-1")
        cb = parse(kind, query, form)  # CallbackInvalid: a 400 naming the fields (app.web.errors)
        await hooks.ingest.handle(letter_for(kind, query, form, cb), cb)
        await send(_start_204())
        await send({"type": "http.response.body", "body": b""})


def _start_204() -> dict[str, Any]:
    return {"type": "http.response.start", "status": 204, "headers": []}


status = Webhook("status")
conference = Webhook("conference")
WEBHOOKS = {"/twilio/status": status, "/twilio/conference": conference}  # POST, served beside the router too


def routes() -> list[Route]:
    return [Route(path, hook, methods=["POST"]) for path, hook in WEBHOOKS.items()]
