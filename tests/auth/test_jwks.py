"""JWKS verification (app/auth/jwks.py) against a real local JWKS server over HTTP,
with an injected clock for the cache age and the refresh rate limit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import jwt
import pytest

from app.auth.tokens import KeyUnknown, TokenInvalid, TokenVerifier
from app.config import ConfigError, load_settings
from app.auth.jwks import JwksKeys, parse_jwks
from tests.support.jwks import AUDIENCE, ISSUER, JwksServer, SigningKey, claims


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def idp() -> Iterator[JwksServer]:
    server = JwksServer(SigningKey("k1", "RS256"))
    yield server
    server.stop()


def verifier_for(idp: JwksServer, clock: Clock, *, cooldown: float = 30, max_age: float = 600) -> TokenVerifier:
    keys = JwksKeys(idp.url, cooldown=cooldown, max_age=max_age, clock=clock)
    return TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE)


async def test_first_token_loads_the_keys_then_verifies_from_memory(idp: JwksServer) -> None:
    verifier = verifier_for(idp, Clock())
    assert (await verifier.authenticate(idp.sign(claims(sub="alice")))).user_id == "alice"
    assert (await verifier.authenticate(idp.sign(claims(sub="bob")))).user_id == "bob"
    assert idp.requests == 1


async def test_rotation_to_an_unknown_kid_refetches_once_for_all_waiting_callers(idp: JwksServer) -> None:
    clock = Clock()
    verifier = verifier_for(idp, clock)
    await verifier.authenticate(idp.sign(claims()))
    clock.now += 31
    idp.rotate(SigningKey("k2", "ES256"))
    tokens = [idp.sign(claims(sub=f"u{i}")) for i in range(20)]
    principals = await asyncio.gather(*(verifier.authenticate(t) for t in tokens))
    assert [p.user_id for p in principals] == [f"u{i}" for i in range(20)]
    assert idp.requests == 2


async def test_unknown_kid_fetches_are_rate_limited(idp: JwksServer) -> None:
    clock = Clock()
    verifier = verifier_for(idp, clock, cooldown=30)
    await verifier.authenticate(idp.sign(claims()))
    forged = SigningKey("k-unknown", "RS256")
    for _ in range(50):
        with pytest.raises(KeyUnknown):
            await verifier.authenticate(forged.sign(claims()))
    assert idp.requests == 1  # within the cooldown: no fetch at all
    clock.now += 30
    with pytest.raises(KeyUnknown):
        await verifier.authenticate(forged.sign(claims()))
    assert idp.requests == 2
    # A real rotation inside the cooldown waits for it to pass.
    idp.rotate(SigningKey("k2", "RS256"), keep_old=True)
    rotated = idp.sign(claims())
    with pytest.raises(KeyUnknown):
        await verifier.authenticate(rotated)
    clock.now += 30
    assert (await verifier.authenticate(rotated)).user_id == "u1"


async def test_a_known_key_verifies_without_io_and_stale_keys_refresh_in_the_background(idp: JwksServer) -> None:
    clock = Clock()
    verifier = verifier_for(idp, clock, max_age=600)
    old = idp.sign(claims())
    await verifier.authenticate(old)
    old_key = idp.current
    idp.rotate(SigningKey("k2", "RS256"))  # k1 withdrawn at the provider
    clock.now += 601
    # `verify` is synchronous: a known key answers from memory, however stale,
    # and a fetch starts in the background.
    assert verifier.verify(old_key.sign(claims(sub="later"))).user_id == "later"
    for _ in range(200):  # the background fetch runs in a worker thread
        if idp.requests == 2:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0)
    assert idp.requests == 2
    with pytest.raises(TokenInvalid):  # the cached verification of `old` is dropped too
        verifier.verify(old)
    assert verifier.verify(idp.sign(claims(sub="new"))).user_id == "new"


async def test_issuer_audience_and_algorithm_are_enforced(idp: JwksServer) -> None:
    verifier = verifier_for(idp, Clock())
    key = idp.current
    for bad in (claims(iss="https://evil/"), claims(aud="someone-else"), {**claims(), "aud": None}):
        with pytest.raises(TokenInvalid):
            await verifier.authenticate(key.sign({k: v for k, v in bad.items() if v is not None}))
    # An HS256 token keyed with the published RSA key's kid (algorithm confusion).
    public_pem = key.jwk()["n"].encode()
    confused = jwt.encode(claims(), public_pem, algorithm="HS256", headers={"kid": key.kid})
    with pytest.raises(TokenInvalid):
        await verifier.authenticate(confused)


async def test_provider_down_is_a_401_error_not_a_crash() -> None:
    idp = JwksServer(SigningKey("k1", "ES256"))
    token = idp.sign(claims())
    idp.stop()
    verifier = verifier_for(idp, Clock())
    with pytest.raises(KeyUnknown):
        await verifier.authenticate(token)


def test_parse_jwks_keeps_only_rs256_and_es256_signing_keys() -> None:
    rsa, ec = SigningKey("r", "RS256"), SigningKey("e", "ES256")
    body = {"keys": [rsa.jwk(), ec.jwk(), {**SigningKey("enc", "RS256").jwk(), "use": "enc"},
                     {"kty": "oct", "k": "c2VjcmV0", "kid": "h", "alg": "HS256"}]}
    import json

    keys = parse_jwks(json.dumps(body).encode())
    assert {kid: k.algorithm for kid, k in keys.items()} == {"r": "RS256", "e": "ES256"}
    for bad in (b"not json", b'{"keys": []}', json.dumps({"keys": [body["keys"][3]]}).encode()):
        with pytest.raises(ValueError):
            parse_jwks(bad)


def test_jwks_url_settings() -> None:
    base = {"APP_ENV": "test", "JWT_JWKS_URL": "https://idp.example/.well-known/jwks.json"}
    assert load_settings(base).jwt_jwks_url.startswith("https://")
    for url in ("file:///etc/passwd", "idp.example/jwks", "https://"):
        with pytest.raises(ConfigError, match="JWT_JWKS_URL"):
            load_settings({**base, "JWT_JWKS_URL": url})
    with pytest.raises(ConfigError, match="https"):
        load_settings({"APP_ENV": "production", "REDIS_URL": "redis://r", "EVENTS_API_KEY": "k",
                       "JWT_JWKS_URL": "http://idp.example/jwks"})
    # With a JWKS URL, no static JWT key is needed.
    assert load_settings({"APP_ENV": "production", "REDIS_URL": "redis://r", "EVENTS_API_KEY": "k",
                          "JWT_JWKS_URL": "https://idp.example/jwks"}).jwt_secret == ""
