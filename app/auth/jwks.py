"""Which keys verify bearer tokens: the configured static key, or an identity
provider's published JWKS (`JWT_JWKS_URL`), cached and refreshed on rotation."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request
from typing import Awaitable, Callable

import jwt

from app.auth.tokens import KeySource, StaticKey, TokenVerifier, VerifyKey
from app.config import Settings

log = logging.getLogger(__name__)

JWKS_ALGORITHMS = frozenset({"RS256", "ES256"})
MAX_JWKS_BYTES = 1 << 20
FETCH_TIMEOUT = 5.0

Fetch = Callable[[str], Awaitable[bytes]]


def parse_jwks(body: bytes) -> dict[str | None, VerifyKey]:
    """The signing keys of a JWKS document by `kid` (RS256/ES256 only; others skipped).
    Raises ValueError when the document holds no usable key."""
    try:
        keyset = jwt.PyJWKSet.from_dict(json.loads(body))
    except (ValueError, jwt.PyJWTError) as exc:
        raise ValueError(f"unusable JWKS document: {exc}") from None
    keys: dict[str | None, VerifyKey] = {}
    for jwk in keyset:
        if jwk.algorithm_name in JWKS_ALGORITHMS and jwk.public_key_use in (None, "sig"):
            keys[jwk.key_id] = VerifyKey(jwk.key, jwk.algorithm_name)
    if not keys:
        raise ValueError("JWKS document has no RS256/ES256 signing key")
    return keys


def _get(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "callstate"})
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:  # noqa: S310 - scheme checked in config
        body: bytes = response.read(MAX_JWKS_BYTES + 1)
    if len(body) > MAX_JWKS_BYTES:
        raise ValueError(f"JWKS document over {MAX_JWKS_BYTES} bytes")
    return body


async def fetch_url(url: str) -> bytes:
    """GET the document in a worker thread: the event loop never waits on the provider."""
    return await asyncio.to_thread(_get, url)


class JwksKeys(KeySource):
    """The provider's keys, held in memory. An unknown `kid` triggers one fetch (at most
    one per `cooldown` seconds, concurrent callers share it); a known key older than
    `max_age` is used as is while a background fetch picks up withdrawn keys."""

    def __init__(self, url: str, *, cooldown: float, max_age: float, fetch: Fetch = fetch_url,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.version = 0
        self.fetches = 0  # attempts, successful or not (read by the metrics collector)
        self._cooldown = cooldown
        self._max_age = max_age
        self._fetch = fetch
        self._clock = clock
        self._keys: dict[str | None, VerifyKey] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[bool] | None = None

    def key_for(self, kid: str | None, algorithm: str) -> VerifyKey | None:
        if self._fetched_at is not None and self._clock() - self._fetched_at >= self._max_age:
            self._refresh_in_background()
        found = self._keys.get(kid)
        if found is None and kid is None:
            # No `kid` in the token: acceptable only when one key has its algorithm.
            candidates = [k for k in self._keys.values() if k.algorithm == algorithm]
            found = candidates[0] if len(candidates) == 1 else None
        return found if found is not None and found.algorithm == algorithm else None

    async def refresh(self, kid: str | None) -> bool:
        async with self._lock:
            if kid is not None and kid in self._keys:  # another caller's fetch brought it
                return True
            if self._fetched_at is not None and self._clock() - self._fetched_at < self._cooldown:
                return False
            await self._load()
        return kid in self._keys or (kid is None and bool(self._keys))

    def _refresh_in_background(self) -> None:
        if self._background is None or self._background.done():
            self._background = asyncio.get_running_loop().create_task(self.refresh(None))

    async def _load(self) -> None:
        self._fetched_at = self._clock()  # failures count against the rate limit too
        self.fetches += 1
        try:
            keys = parse_jwks(await self._fetch(self.url))
        except (OSError, ValueError) as exc:
            log.warning("JWKS fetch from %s failed: %s", self.url, exc)
            return
        if not set(self._keys) <= set(keys):
            self.version += 1  # a key was withdrawn: tokens it verified must be checked again
        self._keys = keys


def build_verifier(settings: Settings) -> TokenVerifier:
    keys: KeySource
    if settings.jwt_jwks_url:
        keys = JwksKeys(settings.jwt_jwks_url, cooldown=settings.jwt_jwks_cooldown_seconds,
                        max_age=settings.jwt_jwks_max_age_seconds)
    else:
        keys = StaticKey(settings.jwt_verify_key(), settings.jwt_algorithm)
    return TokenVerifier(keys, issuer=settings.jwt_issuer, audience=settings.jwt_audience)
