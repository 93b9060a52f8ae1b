"""`X-Twilio-Signature` checking (pure): HMAC-SHA1 over the URL Twilio requested
followed by every POST parameter, sorted by name, as `name + value`.

Matches twilio-python's `RequestValidator`: the URL is tried both with and
without its port (Twilio drops the port for voice over HTTPS and keeps it for
HTTP), repeated names contribute each distinct value in sorted order, and
comparison is constant-time. Tokens are chosen by the request's `AccountSid`
when a map is configured; every configured token for that account is tried,
so a token can be rotated without dropping callbacks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from app.config_rules import parse_token_map

Params = Sequence[tuple[str, str]]


def compute_signature(token: str, url: str, params: Params) -> str:
    """Base64 HMAC-SHA1 of `url` + each `name + value`, names and values sorted."""
    return _sign(token, url + signed_params(params))


def signed_params(params: Params) -> str:
    """What follows the URL in the signed text: each distinct `name + value`,
    sorted by name, then value (as `RequestValidator` groups repeated names)."""
    return "".join([name + value for name, value in sorted(set(params))])


def _sign(token: str, text: str) -> str:
    digest = hmac.new(token.encode("utf-8"), text.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def url_variants(url: str) -> tuple[str, str]:
    """(without port, with port): Twilio signs one or the other depending on
    scheme and product, so both are tried (as `RequestValidator` does). Only
    the port changes: path and query stay byte for byte as given."""
    parts = urlsplit(url)
    head = f"{parts.scheme}://{parts.netloc}"
    if not url.startswith(head):  # not an absolute URL: nothing to vary
        return url, url
    rest = url[len(head):]
    if parts.port:
        bare = parts.netloc.rsplit(":", 1)[0]
        return f"{parts.scheme}://{bare}{rest}", url
    default = 443 if parts.scheme == "https" else 80
    return url, f"{head}:{default}{rest}"


def is_valid(url: str, params: Params, signature: str | None, tokens: Iterable[str]) -> bool:
    """True when `signature` matches `url` (with or without port) under any token.
    Every candidate is computed and compared, so the time taken does not say
    which comparison came closest."""
    try:
        candidates = url_variants(url)
    except ValueError:  # e.g. a port that is not a number
        return False
    return matches(candidates, params, signature, tokens)


def base_variants(base: str) -> tuple[str, str] | None:
    """`url_variants` of a base URL (scheme, host, optional path prefix), computed
    once: each variant + the raw path and query is that URL's variant (only the
    port changes). None when the base is not an absolute URL with a valid port."""
    try:
        variants = url_variants(base)
    except ValueError:
        return None
    if variants[0] == variants[1] or urlsplit(base).query or "#" in base:
        return None  # not a plain absolute base: vary each URL whole
    return variants


def matches(candidates: Iterable[str], params: Params, signature: str | None, tokens: Iterable[str]) -> bool:
    """True when `signature` matches any of the candidate URLs under any token
    (every candidate computed and compared, in constant time each)."""
    if not signature:
        return False
    presented = signature.strip().encode("ascii", "replace")
    tail = signed_params(params)  # the same for every candidate: built once
    ok = False
    for token in tokens:
        for candidate in candidates:
            ok |= hmac.compare_digest(_sign(token, candidate + tail).encode("ascii"), presented)
    return ok


class TokenBook:
    """Which auth tokens may have signed a request from a given `AccountSid`."""

    def __init__(self, default: Sequence[str], by_account: Mapping[str, Sequence[str]]) -> None:
        self._default = tuple(t for t in default if t)
        self._by_account = {sid: tuple(t for t in tokens if t) for sid, tokens in by_account.items()}

    @classmethod
    def from_settings(cls, token: str, secondary: str, tokens_json: str) -> TokenBook:
        """`TWILIO_AUTH_TOKEN` (+ `_SECONDARY` during rotation) for any account, and
        `TWILIO_AUTH_TOKENS`, a JSON object of AccountSid to a token or a list of tokens.
        Raises ValueError when the JSON is not that shape."""
        return cls([token, secondary], parse_token_map(tokens_json))

    def tokens_for(self, account_sid: str | None) -> tuple[str, ...]:
        if account_sid and account_sid in self._by_account:
            return self._by_account[account_sid]
        return self._default

    @property
    def configured(self) -> bool:
        return bool(self._default) or any(self._by_account.values())
