"""Sending a flow's recorded callbacks to the service over HTTP, and reading
back what each user sees."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx

from app.config import Settings
from tests.flows.model import TWILIO_TOKEN, USERS, Flow, Step
from tests.support.api import bearer, seed
from tests.support.factories import token

FORM = "application/x-www-form-urlencoded"


def signed(step: Step, base_url: str, *, auth_token: str = TWILIO_TOKEN) -> dict[str, Any]:
    """Keyword arguments for `client.post` that deliver `step` as Twilio would."""
    return {
        "url": base_url + step.url_tail,
        "content": urlencode(step.params).encode(),
        "headers": {"Content-Type": FORM, "X-Twilio-Signature": step.signature(base_url, auth_token)},
    }


async def deliver(client: httpx.AsyncClient, step: Step, base_url: str = "http://testserver") -> httpx.Response:
    return await client.post(**signed(step, base_url))


async def open_session(client: httpx.AsyncClient, flow: Flow) -> None:
    if flow.opening:
        await seed(client, *flow.opening)


async def seen_by(client: httpx.AsyncClient, settings: Settings, user: str) -> dict[str, dict[str, Any]]:
    """`GET /sessions/active` as `user`: session id -> session JSON."""
    u = USERS[user]
    tok = token(settings, sub=user, account=u["account"], endpoint=u["endpoint"], roles=u["roles"])
    r = await client.get("/sessions/active", headers=bearer(tok))
    assert r.status_code == 200, r.text
    return {s["id"]: s for s in r.json()["sessions"]}
