"""JWT_JWKS_URL end to end: the service as a real process verifies an identity
provider's tokens while the provider rotates its key, on REST and on a live socket."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.support.factories import event
from tests.support.jwks import AUDIENCE, ISSUER, JwksServer, SigningKey, claims
from tests.support.live import LiveClient, post_events
from tests.support.processes import ServiceProcess


@pytest.fixture
def idp() -> Iterator[JwksServer]:
    server = JwksServer(SigningKey("2024-rsa", "RS256"))
    yield server
    server.stop()


@pytest.fixture
def server(clean_redis: str, idp: JwksServer) -> Iterator[ServiceProcess]:
    proc = ServiceProcess(clean_redis, env={
        "JWT_JWKS_URL": idp.url, "JWT_ISSUER": ISSUER, "JWT_AUDIENCE": AUDIENCE,
        # The rotation below comes right after the first fetch; the rate limit itself
        # is covered in tests/auth/test_jwks.py.
        "JWT_JWKS_COOLDOWN_SECONDS": "0",
    })
    yield proc
    proc.stop()


async def active(server: ServiceProcess, token: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(server.url + "/sessions/active", headers={"Authorization": f"Bearer {token}"})


async def test_rest_follows_a_key_rotation_without_restart(server: ServiceProcess, idp: JwksServer) -> None:
    before = idp.sign(claims())
    assert (await active(server, before)).status_code == 200
    idp.rotate(SigningKey("2025-ec", "ES256"))
    after = idp.sign(claims())
    assert (await active(server, after)).status_code == 200
    refused = await active(server, before)  # its key is withdrawn at the provider
    assert refused.status_code == 401
    assert refused.json()["responseStatus"]["errorCode"] == "TokenException"
    wrong_audience = await active(server, idp.sign(claims(aud="another-api")))
    assert wrong_audience.status_code == 401 and "Audience" in wrong_audience.json()["responseStatus"]["message"]


async def test_a_live_socket_refreshes_with_a_token_from_the_new_key(server: ServiceProcess, idp: JwksServer) -> None:
    client = await LiveClient.connect(server.url, idp.sign(claims()))
    await client.next("snapshot")
    idp.rotate(SigningKey("2025-ec", "ES256"))
    await client.ws.send(json.dumps({"type": "auth", "token": idp.sign(claims(ttl=3600))}))
    assert (await client.next("authenticated"))["type"] == "authenticated"
    [cursor] = await post_events(server.url, event("session.upsert", "A1", "S1", session={"endpointId": "E1"}))
    assert (await client.next("patch"))["cursor"] == cursor
    # A token signed by a key the provider never published ends the socket (3501).
    forged = SigningKey("2025-ec", "ES256").sign(claims())
    await client.ws.send(json.dumps({"type": "auth", "token": forged}))
    assert (await client.closed(5))[0] == 3501
