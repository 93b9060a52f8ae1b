"""`GET /openapi.json`: a valid OpenAPI 3.1 document (openapi-spec-validator) that
names every route the app serves, and a bounded schemathesis fuzz of a real
server process from it: no 5xx, every answer as documented, every error in the
`responseStatus` shape."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings as hsettings
from openapi_spec_validator import validate
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Route

from app.config import Settings
from app.composition import create_app
from tests.support.dtos import EVENTS_KEY
from tests.support.factories import token
from tests.support.processes import ServiceProcess

MAX_EXAMPLES = 6
CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance)


async def test_document_is_valid_openapi_31(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    assert set(doc["components"]["securitySchemes"]) >= {"bearerAuth", "eventsApiKey", "twilioSignature"}
    assert doc["components"]["schemas"]["ResponseStatus"]["properties"]["errorCode"]


def test_document_names_every_route_the_app_serves(settings: Settings) -> None:
    from app.apidocs.openapi import document

    app = create_app(settings, redis=None)
    paths = document("http://x")["paths"]
    served = {(r.path, m.lower()) for r in app.routes if isinstance(r, Route) for m in r.methods or ()
              if m != "HEAD"}
    documented = {(p, m) for p, ops in paths.items() for m in ops}
    assert served - documented == set()
    assert ("/metrics", "get") in documented  # served by app.observability once merged


def test_a_broken_document_is_rejected() -> None:
    """The validator can fail: a response without a description is not OpenAPI."""
    from app.apidocs.openapi import document

    doc = document("http://x")
    del doc["paths"]["/events"]["post"]["responses"]["200"]["description"]
    with pytest.raises(Exception, match="description"):
        validate(doc)


def _auth(path: str, user_token: str) -> dict[str, str]:
    if path == "/events":
        return {"Authorization": f"Bearer {EVENTS_KEY}"}
    if path == "/sessions/live":  # an authorized SSE stream never ends: fuzz its refusals only
        return {}
    return {"Authorization": f"Bearer {user_token}"}


def _assert_error_shape(response: Any) -> None:
    if response.status_code >= 400 and response.headers.get("content-type", [""])[0].startswith("application/json"):
        status = response.json().get("responseStatus")
        assert isinstance(status, dict) and status.get("errorCode") and status.get("message"), response.text


def test_fuzz_the_live_service_from_its_document(clean_redis: str, settings: Settings) -> None:
    service = ServiceProcess(clean_redis, env={"LIVE_POLL_MAX_WAIT": "0.2"})
    try:
        raw = httpx.get(service.url + "/openapi.json").json()
        schema = schemathesis.openapi.from_dict(raw)
        user = token(settings, endpoint="E1")
        metrics_served = httpx.get(service.url + "/metrics").status_code != 404
        fuzzed = 0
        for result in schema.get_all_operations():
            operation = result.ok()
            if operation.path == "/metrics" and not metrics_served:
                continue  # documented ahead of app.observability (issue 12, part 2)

            @given(case=operation.as_strategy())
            @hsettings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
                       phases=[Phase.explicit, Phase.generate],
                       suppress_health_check=list(HealthCheck))
            def call(case: schemathesis.Case) -> None:
                response = case.call(base_url=service.url, headers=_auth(operation.path, user), timeout=10)
                case.validate_response(response, checks=CHECKS)
                _assert_error_shape(response)

            call()
            fuzzed += 1
        assert fuzzed >= 25
        assert "Traceback" not in service.output()
    finally:
        service.stop()


