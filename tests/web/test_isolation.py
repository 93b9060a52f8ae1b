"""Randomised sessions across two accounts: each user sees exactly what the rule gives,
through every route and format."""

import random
import re
import xml.etree.ElementTree as ET

import httpx

from app.config import Settings
from tests.support.api import bearer, seed
from tests.support.factories import event, token

ACCOUNTS = ["A1", "A2"]
ENDPOINTS = ["E1", "E2", "E3", "E4"]
PATHS = ["/sessions/active", "/api/GetActiveSessions", "/json/reply/GetActiveSessions", "/sessions/my",
         "/sessions/active.xml", "/xml/reply/GetActiveSessions", "/sessions/active?format=jsv",
         "/csv/reply/GetActiveSessions"]
ID_NS = "{http://schemas.datacontract.org/2004/07/Voice.Api}Id"


def random_world(rng: random.Random) -> tuple[list[dict], dict[str, dict]]:
    events, sessions = [], {}
    for n in range(40):
        acct, sid = rng.choice(ACCOUNTS), f"S{n}"
        body = {"endpointId": rng.choice(ENDPOINTS + [None])}
        if rng.random() < 0.4:
            body["answeredById"] = rng.choice(ENDPOINTS)
        members = [{"identity": f"m{i}", "endpointId": rng.choice(ENDPOINTS)} for i in range(rng.randint(0, 2))]
        if members:
            body["members"] = members
        events.append(event("session.upsert", acct, sid, session=body))
        ended = rng.random() < 0.25
        if ended:
            events.append(event("session.end", acct, sid))
        eps = {body.get("endpointId"), body.get("answeredById"), *(m["endpointId"] for m in members)} - {None}
        sessions[sid] = {"account": acct, "endpoints": eps, "ended": ended}
    return events, sessions


def ids_in(path: str, r: httpx.Response) -> set[str]:
    if ".xml" in path or "/xml/" in path:
        return {e.text for e in ET.fromstring(r.content).iter(ID_NS) if e.text}
    if "jsv" in path or "csv" in path:
        return set(re.findall(r"\bid:(S\d+)", r.text))
    return {s["id"] for s in r.json()["sessions"]}


async def test_each_user_sees_exactly_their_sessions(client: httpx.AsyncClient, settings: Settings) -> None:
    rng = random.Random(20241123)
    events, world = random_world(rng)
    await seed(client, *events)
    viewers = [(a, e, roles) for a in ACCOUNTS for e in ENDPOINTS for roles in (("User",),)]
    viewers += [(a, None, ("User", "Manager")) for a in ACCOUNTS] + [("A1", "E1", ("Admin",))]
    viewers += [("A3", "E1", ("User", "Manager"))]  # an account with nothing
    for account, endpoint, roles in viewers:
        whole = "Manager" in roles or "Admin" in roles
        expected = {sid for sid, s in world.items()
                    if s["account"] == account and not s["ended"] and (whole or endpoint in s["endpoints"])}
        tok = token(settings, account=account, endpoint=endpoint, roles=roles)
        for path in PATHS:
            r = await client.get(path, headers=bearer(tok))
            assert r.status_code == 200, (path, r.text)
            assert ids_in(path, r) == expected, (account, endpoint, roles, path)
