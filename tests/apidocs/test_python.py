"""`/types/python` and the Python DTOs on the operation page: the seed page's
module exactly, and it works with the PyPI `servicestack` client against a real
server process."""

from __future__ import annotations

import html
import re

import httpx
import msgspec
from servicestack import IGet, IReturn, JsonServiceClient

from app.apidocs import catalog, metadata, python
from app.config import Settings
from app.domain.dtos import GetActiveSessionsResponse
from tests.support.dtos import load_module, populate
from tests.support.factories import token
from tests.support.processes import ServiceProcess
from tests.support.seed_dtos import SEED


def seed_module() -> str:
    text = SEED.read_text()
    return text[text.index("import datetime"):text.index("Python GetActiveSessions DTOs")]


def test_the_operation_module_is_the_seed_pages_module_exactly() -> None:
    only_get_active = metadata.build("http://x", catalog.OPERATIONS[:1])
    assert python.module(only_get_active) == seed_module()


def test_enum_member_names_follow_servicestack() -> None:
    assert python.enum_member("None") == "NONE"
    assert python.enum_member("InProgress") == "IN_PROGRESS"
    assert python.enum_member("ALREADY_UPPER") == "ALREADY_UPPER"
    assert python.snake("MostRecentParticipantCallSid") == "most_recent_participant_call_sid"


def test_types_python_from_the_service_loads_and_calls_it(service: ServiceProcess, settings: Settings) -> None:
    r = httpx.get(service.url + "/types/python")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    header, _, body = r.text.partition('"""\n\n')
    assert header.startswith('""" Options:\nDate: ') and f"BaseUrl: {settings.public_url}\n" in header  # PUBLIC_URL wins
    # Every operation we serve: the seed's module, then GetMySessions after it.
    assert body.startswith(seed_module())
    assert re.search(r"class GetMySessions:\n", body[len(seed_module()):])

    dtos = load_module("generated_dtos_py", r.text)
    populate(service.url)
    client = JsonServiceClient(service.url)
    client.bearer_token = token(settings, endpoint="E1")

    # The published request DTO has no IReturn marker (as on the seed page): the declared route works as is...
    res = client.get_url("/sessions/active", dtos.GetActiveSessionsResponse)
    # ...and with the marker added, the pre-defined /api/GetActiveSessions route.
    class GetActiveSessions(dtos.GetActiveSessions, IReturn[dtos.GetActiveSessionsResponse], IGet):  # type: ignore[misc,name-defined]
        pass

    via_api = client.get(GetActiveSessions())
    assert isinstance(res, dtos.GetActiveSessionsResponse) and isinstance(via_api, dtos.GetActiveSessionsResponse)

    wire = msgspec.json.decode(httpx.get(service.url + "/sessions/active",
                                         headers={"Authorization": f"Bearer {client.bearer_token}"}).content,
                               type=GetActiveSessionsResponse)
    expected = msgspec.to_builtins(wire)
    for got in (res, via_api):
        assert _drop_none(got.to_dict(encode_json=True)) == expected
    [s] = res.sessions
    assert isinstance(s, dtos.SessionInfo) and isinstance(s, dtos.EntityInfo)
    assert s.call_state is dtos.SessionCallState.CONNECTED and s.members[0].role is dtos.SessionMemberRoles.AGENT


async def test_operation_page_shows_the_seed_module(client: httpx.AsyncClient) -> None:
    r = await client.get("/json/metadata", params={"op": "getactivesessions", "lang": "python"})
    assert r.status_code == 200
    pre = re.search(r'<pre id="dtos">(.*?)</pre>', r.text, re.S)
    assert pre is not None and html.unescape(pre.group(1)) == seed_module()


def _drop_none(value: object) -> object:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value
