"""`GET /sessions/sweep`: the caller's account's sweep counts, in the API's error shape when refused."""

from __future__ import annotations

import httpx

from app.config import Settings
from tests.support.factories import token


async def test_the_sweep_counts_of_the_callers_account(client: httpx.AsyncClient, settings: Settings) -> None:
    r = await client.get("/sessions/sweep", headers={"Authorization": f"Bearer {token(settings, account='A3')}"})
    assert r.status_code == 200 and r.headers["cache-control"] == "private, no-cache"
    assert r.json() == {"accountId": "A3", "asked": 0, "confirmed": 0, "resolved": {}, "lost": 0, "stale": 0,
                        "errors": 0, "lastPassAt": None, "intervalSeconds": 0.0}


async def test_without_a_token_it_is_refused_in_the_error_shape(client: httpx.AsyncClient) -> None:
    r = await client.get("/sessions/sweep")
    assert r.status_code == 401 and r.json()["responseStatus"]["errorCode"]
