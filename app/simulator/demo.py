"""`python -m app demo`: the service on the embedded store, the simulator
running against it, and the console's URL with a ready token, so the first
command a newcomer runs shows live calls within seconds."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from typing import Any, Final

import uvicorn

from app.auth.tokens import mint_token
from app.config import Settings, load_settings
from app.auth.demo_users import demo_identity
from app.simulator.cast import DEMO_CAST
from app.simulator.runner import Plan, simulate

DEMO_TWILIO_TOKEN: Final = "demo-twilio-auth-token-not-secret"
# The sweep at demo pace: a call dropped callbacks left stuck (`--drop-callbacks`) is marked stale within
# a minute. No Twilio REST API in development (its token is not a real account's): stale, not resolved.
DEMO_SWEEP: Final = {"sweep_interval_seconds": 5, "sweep_ringing_after_seconds": 30,
                     "sweep_in_progress_max_seconds": 180, "sweep_recheck_seconds": 30, "sweep_lease_seconds": 30}
TOKEN_TTL: Final = 8 * 3600


def local_url(host: str, port: int) -> str:
    """Where this machine reaches a server listening on `host`."""
    return f"http://{'127.0.0.1' if host in ('', '0.0.0.0', '::') else host}:{port}"


def demo_settings(host: str | None, port: int | None, environ: Mapping[str, str] = os.environ) -> Settings:
    """Development settings on the embedded store, with a Twilio token and a public
    URL that the simulator signs with (whatever the environment says). The demo's
    server is built from them in this process: nothing is passed through the environment."""
    environ = {**environ, "APP_ENV": "development"}
    given: dict[str, Any] = {"redis_url": "", "redis_sentinels": "", **DEMO_SWEEP}
    if host:
        given["host"] = host
    if port is not None:
        given["port"] = port
    settings = load_settings(environ, overrides=given)
    given["public_url"] = local_url(settings.host, settings.port)
    given["twilio_auth_token"] = settings.twilio_auth_token or DEMO_TWILIO_TOKEN
    return load_settings(environ, overrides=given)


def banner(url: str, token: str) -> str:
    return (
        "\n  callstate demo: the service on the embedded store, simulated calls flowing in\n\n"
        f"  console (signed in as the acme manager):  {url}/#token={token}&source=dev:manager\n"
        f"  or open {url}/ and press 'Sign in as demo manager'\n\n"
        f"  token (Manager of account acme, 8 h):\n  {token}\n\n"
        f"  try:  curl -s {url}/sessions/active -H \"Authorization: Bearer $TOKEN\"\n"
        "  Ctrl-C stops it.\n\n"
    )


async def run(settings: Settings, plan: Plan) -> None:
    from app.composition import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(settings), host=settings.host, port=settings.port,
                                           log_level="warning", timeout_graceful_shutdown=3))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving
            raise SystemExit(f"the server did not start on {settings.host}:{settings.port}")
        await asyncio.sleep(0.05)
    url = local_url(settings.host, settings.port)
    token = mint_token(settings.jwt_verify_key(), ttl_seconds=TOKEN_TTL, **demo_identity(manager=True))
    sys.stdout.write(banner(url, token))
    sys.stdout.flush()
    traffic = asyncio.create_task(simulate(url, public_url=settings.public_url, twilio_token=settings.twilio_auth_token,
                                           events_key=settings.events_api_key, cast=DEMO_CAST, plan=plan))
    try:
        while not server.should_exit and not serving.done():  # until Ctrl-C or SIGTERM
            await asyncio.sleep(0.1)
    finally:
        traffic.cancel()  # before the server goes, so no call fails on the way out
        await asyncio.gather(traffic, return_exceptions=True)
        await serving
