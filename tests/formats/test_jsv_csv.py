"""JSV and CSV rendering: exact bytes for small DTOs."""

from __future__ import annotations

import pytest

from app.formats import render
from app.formats.jsv import quote
from app.domain.dtos import (
    CustomerBreadcrumb,
    ErrorResponse,
    GetActiveSessionsResponse,
    ResponseError,
    ResponseStatus,
    SessionCallState,
    SessionDialState,
    SessionInfo,
    SessionMemberInfo,
)


def jsv(*sessions: SessionInfo) -> str:
    return render(
        "jsv", GetActiveSessionsResponse(sessions=list(sessions))
    ).body.decode()


def csv(*sessions: SessionInfo) -> str:
    return render(
        "csv", GetActiveSessionsResponse(sessions=list(sessions))
    ).body.decode()


# --- JSV -----------------------------------------------------------------------


def test_jsv_reference_example() -> None:
    """The example of the wire reference, section 6."""
    session = SessionInfo(
        dial_state=SessionDialState.ACTIVE,
        call_state=SessionCallState.CONNECTED,
        account_id="A1",
        customer_breadcrumb=[CustomerBreadcrumb(id="C1", name="Acme, Inc")],
        ended=False,
        id="S1",
    )
    assert jsv(session) == (
        "{sessions:[{dialState:Active,callState:Connected,accountId:A1,"
        'customerBreadcrumb:[{id:C1,name:"Acme, Inc"}],ended:False,id:S1}]}'
    )


def test_jsv_empty_and_null_lists() -> None:
    assert jsv() == "{sessions:[]}"
    assert render("jsv", GetActiveSessionsResponse()).body == b"{sessions:[]}"


def test_jsv_omits_nulls_and_keeps_false() -> None:
    assert jsv(SessionInfo()) == "{sessions:[{}]}"
    assert (
        jsv(SessionInfo(ended=True, was_missed=False))
        == "{sessions:[{ended:True,wasMissed:False}]}"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("with space", "with space"),
        ("  padded  ", "  padded  "),
        ("", '""'),
        ("a,b", '"a,b"'),
        ('say "hi"', '"say ""hi"""'),
        ("2024-05-01T10:00:00Z", '"2024-05-01T10:00:00Z"'),
        ("[x]", '"[x]"'),
        ("{x}", '"{x}"'),
        ("line\nbreak", '"line\nbreak"'),
        ("cr\rhere", '"cr\rhere"'),
        ("Zoë ☎", "Zoë ☎"),
    ],
)
def test_jsv_string_quoting(text: str, expected: str) -> None:
    assert quote(text) == expected
    assert (
        jsv(SessionInfo(account_name=text))
        == f"{{sessions:[{{accountName:{expected}}}]}}"
    )


def test_jsv_nested_lists_and_dicts() -> None:
    member = SessionMemberInfo(
        identity="u1", application_data={"crm": "42", "k,1": "v:2", "empty": ""}
    )
    session = SessionInfo(
        members=[member, SessionMemberInfo(identity="u2", application_data={})], log=[]
    )
    assert jsv(session) == (
        '{sessions:[{log:[],members:[{identity:u1,applicationData:{crm:42,"k,1":"v:2",empty:""}},'
        "{identity:u2,applicationData:{}}]}]}"
    )


def test_jsv_error_response() -> None:
    status = ResponseStatus(error_code="Forbidden", message="Invalid Role")
    body = render("jsv", ErrorResponse(response_status=status)).body
    assert (
        body == b"{responseStatus:{errorCode:Forbidden,message:Invalid Role,errors:[]}}"
    )


def test_jsv_media_type() -> None:
    rendered = render("jsv", GetActiveSessionsResponse(sessions=[]))
    assert rendered.media_type == "text/jsv"
    assert rendered.headers == {}


# --- CSV -----------------------------------------------------------------------


def test_csv_one_header_and_one_quoted_jsv_row() -> None:
    assert (
        csv(SessionInfo(id="S1", ended=False))
        == 'Sessions\r\n"[{ended:False,id:S1}]"\r\n'
    )


def test_csv_empty_list_is_still_quoted() -> None:
    assert csv() == 'Sessions\r\n"[]"\r\n'
    assert render("csv", GetActiveSessionsResponse()).body == b'Sessions\r\n"[]"\r\n'


def test_csv_doubles_quotes_jsv_already_doubled() -> None:
    session = SessionInfo(account_name='Acme, "Inc"', id="S1")
    # JSV: accountName:"Acme, ""Inc""" ; CSV then doubles every quote again.
    assert (
        csv(session) == 'Sessions\r\n"[{accountName:""Acme, """"Inc"""""",id:S1}]"\r\n'
    )


def test_csv_keeps_line_breaks_inside_the_quoted_field() -> None:
    assert (
        csv(SessionInfo(outcome="a\r\nb")) == 'Sessions\r\n"[{outcome:""a\r\nb""}]"\r\n'
    )


def test_csv_error_response() -> None:
    status = ResponseStatus(
        error_code="Invalid",
        message="Bad, bad",
        errors=[
            ResponseError(error_code="NotEmpty", field_name="Name", message="Required")
        ],
    )
    body = render("csv", ErrorResponse(response_status=status)).body
    assert body == (
        b"ResponseStatus\r\n"
        b'"{errorCode:Invalid,message:""Bad, bad"",'
        b'errors:[{errorCode:NotEmpty,fieldName:Name,message:Required}]}"\r\n'
    )


def test_csv_media_type_and_download_name() -> None:
    rendered = render(
        "csv", GetActiveSessionsResponse(sessions=[]), op_name="GetActiveSessions"
    )
    assert rendered.media_type == "text/csv"
    assert rendered.headers == {
        "Content-Disposition": "attachment;filename=GetActiveSessions.csv"
    }
    other = render(
        "csv",
        ErrorResponse(response_status=ResponseStatus(message="x")),
        op_name="Other",
    )
    assert other.headers == {"Content-Disposition": "attachment;filename=Other.csv"}
