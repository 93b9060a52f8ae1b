"""Start-up modes, health, the CLI, and behaviour when Redis is down."""

import os
import subprocess
import sys

import httpx
import redis.asyncio as aioredis

from app.auth.tokens import StaticKey, TokenVerifier
from app.config import Settings
from app.composition import create_app
from tests.support.api import bearer, seed
from tests.support.factories import event, token
from tests.support.processes import ROOT, ServiceProcess, free_port


async def test_embedded_store_serves_without_redis(settings: Settings) -> None:
    import msgspec

    embedded = msgspec.structs.replace(settings, redis_url="")
    app = create_app(embedded)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        await seed(c, event("session.upsert", "A1", "S1", session={"endpointId": "E1"}))
        r = await c.get("/sessions/active", headers=bearer(token(settings)))
        assert [s["id"] for s in r.json()["sessions"]] == ["S1"]
        assert (await c.get("/health")).json()["redis"] is True


async def test_redis_down_is_503_in_api_shape(settings: Settings) -> None:
    dead = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    app = create_app(settings, redis=dead)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                 base_url="http://t") as c:
        assert (await c.get("/health/live")).status_code == 200
        assert (await c.get("/health")).status_code == 503
        r = await c.get("/sessions/active", headers=bearer(token(settings)))
        assert r.status_code == 503 and r.json()["responseStatus"]["errorCode"] == "ServiceUnavailable"
        r = await c.post("/events", json={"events": [event("session.end", "A1", "S1")]},
                         headers=bearer("test-events-key"))
        assert r.status_code == 503 and "Traceback" not in r.text
    await dead.aclose()


def test_token_command_mints_a_verifiable_token(settings: Settings) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "app", "token", "--sub", "alice", "--account", "A7", "--endpoint", "E7",
         "--roles", "User,Manager", "--name", "Alice"],
        cwd=ROOT, env={**os.environ, "APP_ENV": "test"}, capture_output=True, text=True, check=True,
    )
    p = TokenVerifier(StaticKey(settings.jwt_verify_key(), "HS256")).verify(out.stdout.strip())
    assert (p.user_id, p.account_id, p.endpoint_id, p.name) == ("alice", "A7", "E7", "Alice")
    assert p.roles == {"User", "Manager"}


def test_production_without_secrets_refuses_to_start() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "EVENTS_", "REDIS_"))}
    out = subprocess.run([sys.executable, "-m", "app", "serve"], cwd=ROOT, capture_output=True, text=True,
                         env={**env, "APP_ENV": "production", "REDIS_URL": "redis://127.0.0.1:1/0"}, timeout=30)
    assert out.returncode == 2 and "JWT_SECRET" in out.stderr and "Traceback" not in out.stderr


def test_serve_runs_on_the_embedded_store() -> None:
    proc = ServiceProcess("", env={"REDIS_URL": ""})
    try:
        r = httpx.post(proc.url + "/events", headers=bearer("test-events-key"),
                       json={"events": [event("session.upsert", "A1", "S1", session={"endpointId": "E1"})]})
        assert r.status_code == 200, r.text
        assert httpx.get(proc.url + "/health").json()["redis"] is True
    finally:
        proc.stop()
