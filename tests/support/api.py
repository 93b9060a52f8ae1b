"""Small helpers for talking to the service in tests."""

from __future__ import annotations

from typing import Any

import httpx

EVENTS_KEY = "test-events-key"


async def post_events(client: httpx.AsyncClient, *events: dict[str, Any], key: str = EVENTS_KEY) -> httpx.Response:
    return await client.post("/events", json={"events": list(events)}, headers={"Authorization": f"Bearer {key}"})


async def seed(client: httpx.AsyncClient, *events: dict[str, Any]) -> dict[str, Any]:
    r = await post_events(client, *events)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
