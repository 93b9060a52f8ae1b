"""Format negotiation (ServiceStack's precedence) and what render() sends per format."""

from __future__ import annotations

import json

import pytest

from app.formats import negotiate, render
from app.domain.dtos import (
    ErrorResponse,
    GetActiveSessionsResponse,
    ResponseError,
    ResponseStatus,
    SessionCallState,
    SessionInfo,
)

ACTIVE = "/sessions/active"
API = "/api/GetActiveSessions"


@pytest.mark.parametrize(
    ("query", "path", "accept", "content_type", "expected"),
    [
        # 1. ?format= wins over everything, case-insensitively.
        ("xml", API, "application/json", "application/json", ("xml", API)),
        (
            "JSON",
            "/xml/reply/GetActiveSessions",
            "text/csv",
            None,
            ("json", "/xml/reply/GetActiveSessions"),
        ),
        ("csv", API + ".xml", None, None, ("csv", API)),
        ("jsv", ACTIVE, None, None, ("jsv", ACTIVE)),
        # An unknown or empty ?format= is ignored: the next rule decides.
        ("foo", API, None, None, ("json", API)),
        ("foo", API, "application/xml", None, ("xml", API)),
        (
            "foo",
            "/csv/reply/GetActiveSessions",
            None,
            None,
            ("csv", "/csv/reply/GetActiveSessions"),
        ),
        ("", API, "text/jsv", None, ("jsv", API)),
        # 2. First path segment of a pre-defined route...
        (
            None,
            "/xml/reply/GetActiveSessions",
            "application/json",
            None,
            ("xml", "/xml/reply/GetActiveSessions"),
        ),
        (
            None,
            "/jsv/reply/GetActiveSessions",
            None,
            None,
            ("jsv", "/jsv/reply/GetActiveSessions"),
        ),
        (
            None,
            "/csv/reply/GetActiveSessions",
            None,
            None,
            ("csv", "/csv/reply/GetActiveSessions"),
        ),
        (
            None,
            "/json/reply/GetActiveSessions",
            "application/xml",
            None,
            ("json", "/json/reply/GetActiveSessions"),
        ),
        (
            None,
            "/XML/reply/GetActiveSessions",
            None,
            None,
            ("xml", "/XML/reply/GetActiveSessions"),
        ),
        # ...or a suffix, which is always stripped from the returned path.
        (None, API + ".xml", "application/json", None, ("xml", API)),
        (None, API + ".csv", None, None, ("csv", API)),
        (None, API + ".jsv", None, None, ("jsv", API)),
        (None, API + ".json", "application/xml", None, ("json", API)),
        (None, ACTIVE + ".xml", None, None, ("xml", ACTIVE)),
        (None, ACTIVE + ".XML", None, None, ("xml", ACTIVE)),
        # The prefix is looked at before the suffix.
        (
            None,
            "/json/reply/GetActiveSessions.xml",
            None,
            None,
            ("json", "/json/reply/GetActiveSessions"),
        ),
        # Unknown suffixes and dots elsewhere are left alone.
        (None, API + ".foo", None, None, ("json", API + ".foo")),
        (None, "/v1.2/sessions", None, None, ("json", "/v1.2/sessions")),
        (None, "/api/.xml", None, None, ("json", "/api/.xml")),
        (None, "/xml", None, None, ("json", "/xml")),
        # 3. Accept, with q-values.
        (None, ACTIVE, "application/xml", None, ("xml", ACTIVE)),
        (None, ACTIVE, "text/xml", None, ("xml", ACTIVE)),
        (None, ACTIVE, "text/jsv", None, ("jsv", ACTIVE)),
        (None, ACTIVE, "text/csv", None, ("csv", ACTIVE)),
        (None, ACTIVE, "application/json", None, ("json", ACTIVE)),
        (
            None,
            ACTIVE,
            "application/json;q=0.5, application/xml",
            None,
            ("xml", ACTIVE),
        ),
        (None, ACTIVE, "application/xml;q=0.9, text/csv;q=0.95", None, ("csv", ACTIVE)),
        (
            None,
            ACTIVE,
            "text/csv, application/json",
            None,
            ("json", ACTIVE),
        ),  # tie -> JSON
        (
            None,
            ACTIVE,
            "text/xml, text/csv",
            None,
            ("xml", ACTIVE),
        ),  # tie -> preference order
        (None, ACTIVE, "application/xml; charset=utf-8", None, ("xml", ACTIVE)),
        (None, ACTIVE, "APPLICATION/XML", None, ("xml", ACTIVE)),
        (None, ACTIVE, "application/*", None, ("json", ACTIVE)),
        (None, ACTIVE, "text/*", None, ("xml", ACTIVE)),
        (None, ACTIVE, "application/json;q=0, text/*", None, ("xml", ACTIVE)),
        (None, ACTIVE, "application/xml;q=oops, text/csv", None, ("csv", ACTIVE)),
        # A specific type beats */* at the same quality; */* at a higher one wins.
        (None, ACTIVE, "text/xml, */*", "application/json", ("xml", ACTIVE)),
        (None, ACTIVE, "text/xml;q=0.5, */*", None, ("json", ACTIVE)),
        (
            None,
            ACTIVE,
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            None,
            ("xml", ACTIVE),
        ),
        # Nothing we serve is acceptable: ServiceStack's default, JSON.
        (None, ACTIVE, "text/html", "application/xml", ("json", ACTIVE)),
        (None, ACTIVE, "application/json;q=0", None, ("json", ACTIVE)),
        # 4. */* or no Accept: the request's Content-Type, else JSON.
        (None, API, "*/*", "application/json", ("json", API)),  # the TypeScript client
        (None, API, "*/*", "application/xml", ("xml", API)),
        (None, API, "*/*", "text/xml; charset=utf-8", ("xml", API)),
        (None, API, "*/*", "text/csv", ("csv", API)),
        (None, API, "*/*", "text/jsv", ("jsv", API)),
        (None, API, None, "application/xml", ("xml", API)),
        (None, API, "", "text/jsv", ("jsv", API)),
        (None, API, "*/*", "application/x-www-form-urlencoded", ("json", API)),
        (None, API, "*/*", "text/plain", ("json", API)),
        (None, API, "*/*", None, ("json", API)),
        (None, API, None, None, ("json", API)),
        (None, API, "*/*;q=0.8", "text/csv", ("csv", API)),
        # */* defers to Content-Type only among equals: an excluded format stays out.
        (None, API, "text/csv;q=0, */*", "text/csv", ("json", API)),
    ],
)
def test_negotiation_precedence(
    query: str | None,
    path: str,
    accept: str | None,
    content_type: str | None,
    expected: tuple[str, str],
) -> None:
    assert negotiate(query, path, accept, content_type) == expected


# --- what render() sends for each format -------------------------------------


def test_json_is_camel_case_with_nulls_omitted_and_enum_names() -> None:
    session = SessionInfo(
        id="S1", call_state=SessionCallState.CONNECTED, ended=False, account_name=None
    )
    rendered = render("json", GetActiveSessionsResponse(sessions=[session]))
    assert rendered.media_type == "application/json; charset=utf-8"
    assert rendered.headers == {}
    assert (
        rendered.body
        == b'{"sessions":[{"callState":"Connected","ended":false,"id":"S1"}]}'
    )


def test_json_never_omits_the_sessions_list() -> None:
    assert (
        render("json", GetActiveSessionsResponse(sessions=[])).body
        == b'{"sessions":[]}'
    )
    assert render("json", GetActiveSessionsResponse()).body == b'{"sessions":[]}'


def test_json_error_always_lists_errors() -> None:
    status = ResponseStatus(error_code="TokenException", message="Token has expired")
    body = render("json", ErrorResponse(response_status=status)).body
    assert json.loads(body) == {
        "responseStatus": {
            "errorCode": "TokenException",
            "message": "Token has expired",
            "errors": [],
        }
    }
    assert json.loads(render("json", ErrorResponse()).body) == {
        "responseStatus": {"errors": []}
    }


def test_json_error_carries_field_errors() -> None:
    status = ResponseStatus(
        error_code="ValidationException",
        message="Validation failed",
        errors=[
            ResponseError(error_code="NotEmpty", field_name="Name", message="Required")
        ],
    )
    body = render("json", ErrorResponse(response_status=status)).body
    assert json.loads(body)["responseStatus"]["errors"] == [
        {"errorCode": "NotEmpty", "fieldName": "Name", "message": "Required"}
    ]


@pytest.mark.parametrize(
    ("fmt", "media_type"),
    [
        ("json", "application/json; charset=utf-8"),
        ("xml", "application/xml"),
        ("jsv", "text/jsv"),
        ("csv", "text/csv"),
    ],
)
def test_negotiated_format_renders_with_its_media_type(
    fmt: str, media_type: str
) -> None:
    chosen, _ = negotiate(fmt, API, None, None)
    assert chosen == fmt
    assert (
        render(chosen, GetActiveSessionsResponse(sessions=[])).media_type == media_type
    )
