"""The real PyPI `servicestack` client, with the seed page's own DTOs, against a real server process."""

import dataclasses

import httpx
import pytest
from servicestack import IGet, IReturn, JsonServiceClient, WebServiceException

from app.config import Settings
from bench.samples import full_session_fields
from tests.support.factories import event, token
from tests.support.processes import ServiceProcess
from tests.support.seed_dtos import load

pytestmark = pytest.mark.cluster_too  # every test here runs on one node and on a Redis Cluster

seed = load()


class GetActiveSessions(seed.GetActiveSessions, IReturn[seed.GetActiveSessionsResponse], IGet):  # type: ignore[misc,name-defined]
    """The seed's request DTO plus the marker the Python client requires (see the wire reference §8)."""


def populate(service: ServiceProcess) -> None:
    r = httpx.post(service.url + "/events", headers={"Authorization": "Bearer test-events-key"},
                   json={"events": [event("session.upsert", "A1", "S1", session=full_session_fields())]})
    assert r.status_code == 200, r.text


def assert_every_field_populated(obj: object, path: str = "") -> None:
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        assert value is not None, f"{path}{f.name} is None"
        if isinstance(value, list):
            assert value, f"{path}{f.name} is empty"
            for i, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    assert_every_field_populated(item, f"{path}{f.name}[{i}].")


@pytest.mark.parametrize("base_path", ["api", None])
def test_client_reads_every_field(service: ServiceProcess, settings: Settings, base_path: str | None) -> None:
    populate(service)
    client = JsonServiceClient(service.url)
    client.set_base_path(base_path)  # "api" -> /api/GetActiveSessions, None -> /json/reply/GetActiveSessions
    client.bearer_token = token(settings, endpoint="E1")
    res = client.get(GetActiveSessions())
    assert isinstance(res, seed.GetActiveSessionsResponse)
    [s] = res.sessions
    assert isinstance(s, seed.SessionInfo)
    assert_every_field_populated(s)
    assert s.id == "S1" and s.call_state == seed.SessionCallState.CONNECTED
    assert s.members[0].role == seed.SessionMemberRoles.AGENT and s.members[0].muted is False
    assert s.members[0].application_data == {"crm": "42", "tier": "gold"}
    assert s.customer_breadcrumb[1].name == "Acme, Inc" and s.hold_reason == seed.SessionHoldReasons.TRANSFERRING
    post = client.post(GetActiveSessions())  # the pre-defined routes accept POST too
    assert [x.id for x in post.sessions] == ["S1"]


def test_client_gets_web_service_exceptions(service: ServiceProcess, settings: Settings) -> None:
    client = JsonServiceClient(service.url)
    with pytest.raises(WebServiceException) as unauthenticated:
        client.get(GetActiveSessions())
    assert unauthenticated.value.status_code == 401
    assert unauthenticated.value.response_status.error_code == "Unauthorized"
    client.bearer_token = token(settings, roles=("Guest",))
    with pytest.raises(WebServiceException) as forbidden:
        client.get(GetActiveSessions())
    assert forbidden.value.status_code == 403
    assert forbidden.value.response_status.error_code == "Forbidden"
    assert forbidden.value.response_status.message == "Invalid Role"
