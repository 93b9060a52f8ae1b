"""XML rendering against the seed page's DataContractSerializer sample."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from app.formats import render
from app.domain.dtos import (
    CustomerBreadcrumb,
    ErrorResponse,
    FlowChannels,
    GetActiveSessionsResponse,
    ResponseError,
    ResponseStatus,
    SessionCallState,
    SessionDialState,
    SessionDirections,
    SessionHoldReasons,
    SessionInfo,
    SessionLogInfo,
    SessionMemberCallState,
    SessionMemberInfo,
    SessionMemberRoles,
    SessionQueueStates,
)

SEED = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "seed"
    / "GetActiveSessions.txt"
)
DECLARATION = b'<?xml version="1.0" encoding="utf-8"?>'
XSI = "http://www.w3.org/2001/XMLSchema-instance"
NIL = f"{{{XSI}}}nil"
API = "http://schemas.datacontract.org/2004/07/Voice.Api"
SESSIONS = "http://schemas.datacontract.org/2004/07/Voice.Api.Sessions"
CUSTOMERS = "http://schemas.datacontract.org/2004/07/Voice.Api.Customers"
ARRAYS = "http://schemas.microsoft.com/2003/10/Serialization/Arrays"
SERVICESTACK = "http://schemas.servicestack.net/types"
ROOT_OPEN = f'<GetActiveSessionsResponse xmlns:i="{XSI}" xmlns="{SESSIONS}">'


def seed_xml() -> str:
    """The XML block of the seed page, `<GetActiveSessionsResponse` .. its end tag."""
    if not SEED.is_file():
        pytest.fail(f"seed contract missing: {SEED}")
    lines = SEED.read_text(encoding="utf-8").splitlines()
    start = next(
        i
        for i, line in enumerate(lines)
        if line.startswith("<GetActiveSessionsResponse")
    )
    end = next(
        i for i, line in enumerate(lines) if "</GetActiveSessionsResponse>" in line
    )
    return "\n".join(lines[start : end + 1])


def seed_like_session() -> SessionInfo:
    """Every member set, to exactly the placeholder values the seed sample shows."""
    text = "String"
    return SessionInfo(
        id=text,
        date_created=text,
        date_last_modified=text,
        created_by=text,
        last_modified_by=text,
        dial_state=SessionDialState.NONE,
        call_state=SessionCallState.DISCONNECTED,
        queue_state=SessionQueueStates.NONE,
        account_id=text,
        account_name=text,
        customer_id=text,
        customer_breadcrumb=[CustomerBreadcrumb(id=text, name=text)],
        customer_name=text,
        endpoint_id=text,
        endpoint_name=text,
        date_completed=text,
        destination=text,
        to_address=text,
        from_address=text,
        from_name=text,
        answered_by_name=text,
        queue_member_id=text,
        channel=FlowChannels.VOICE,
        ended=False,
        outcome=text,
        call_sid=text,
        console_data=text,
        hold_queue_name=text,
        held_by_user_id=text,
        hold_reason=SessionHoldReasons.NONE,
        conference_sid=text,
        display_name=text,
        log=[SessionLogInfo(date=text, message=text)],
        members=[
            SessionMemberInfo(
                identity=text,
                endpoint_id=text,
                display_name=text,
                is_original_member=False,
                avatar_url=text,
                application_data={text: text},
                call_state=SessionMemberCallState.NONE,
                role=SessionMemberRoles.NONE,
                call_sid=text,
                muted=False,
            )
        ],
        callback_number=text,
        answered_by_id=text,
        direction=SessionDirections.INCOMING,
        from_phone_number=text,
        most_recent_participant_call_sid=text,
        was_missed=False,
        ring_queue_id=text,
    )


def xml_of(*sessions: SessionInfo) -> bytes:
    return render("xml", GetActiveSessionsResponse(sessions=list(sessions))).body


def assert_same_tree(ours: ET.Element, seed: ET.Element, path: str = "") -> None:
    """Tag QNames ({namespace}local) in order, recursively; texts and attributes too."""
    where = f"{path}/{seed.tag}"
    assert ours.tag == seed.tag, where
    assert ours.attrib == seed.attrib, where
    assert (ours.text or "").strip() == (seed.text or "").strip(), where
    assert [c.tag for c in ours] == [c.tag for c in seed], where
    for mine, theirs in zip(ours, seed, strict=True):
        assert_same_tree(mine, theirs, where)


def namespace_declarations(document: bytes) -> list[tuple[str, str]]:
    """Every xmlns declaration in document order, as (prefix, uri)."""
    events = ET.iterparse(io.BytesIO(document), events=("start-ns",))
    return [ns for _, ns in events]


def test_fully_populated_session_matches_seed_element_by_element() -> None:
    seed = ET.fromstring(seed_xml())
    ours = ET.fromstring(xml_of(seed_like_session()))
    assert_same_tree(ours, seed)


def test_fully_populated_session_matches_seed_namespace_by_namespace() -> None:
    seed = seed_xml().encode()
    assert namespace_declarations(
        xml_of(seed_like_session())
    ) == namespace_declarations(seed)
    # Sanity: the seed really does declare what the rest of this file relies on.
    assert ("d4p1", CUSTOMERS) in namespace_declarations(seed)
    assert ("d6p1", ARRAYS) in namespace_declarations(seed)


def test_fully_populated_session_matches_seed_byte_for_byte() -> None:
    """Same bytes as the seed once its pretty-printing whitespace is removed."""
    compact = re.sub(r">\s+<", "><", seed_xml()).encode()
    assert xml_of(seed_like_session()) == DECLARATION + compact


def test_declaration_then_root_on_one_line() -> None:
    body = xml_of(seed_like_session())
    assert body.startswith(DECLARATION + ROOT_OPEN.encode())
    assert b"\n" not in body and b"  " not in body


def test_prefixes_are_declared_by_depth_on_the_member_elements() -> None:
    body = xml_of(seed_like_session())
    assert (
        f'<CustomerBreadcrumb xmlns:d4p1="{CUSTOMERS}">'
        "<d4p1:CustomerBreadcrumb>".encode()
        in body
    )
    assert b"<d4p1:Id>String</d4p1:Id><d4p1:Name>String</d4p1:Name>" in body
    assert (
        f'<ApplicationData xmlns:d6p1="{ARRAYS}"><d6p1:KeyValueOfstringstring>'.encode()
        in body
    )
    assert b"<d6p1:Key>String</d6p1:Key><d6p1:Value>String</d6p1:Value>" in body


def test_each_session_redeclares_its_own_prefix() -> None:
    crumb = [CustomerBreadcrumb(id="C1", name="Acme")]
    body = xml_of(
        SessionInfo(id="S1", customer_breadcrumb=crumb),
        SessionInfo(id="S2", customer_breadcrumb=crumb),
    )
    assert body.count(f'xmlns:d4p1="{CUSTOMERS}"'.encode()) == 2
    names = [e.text for e in ET.fromstring(body).iter(f"{{{CUSTOMERS}}}Name")]
    assert names == ["Acme", "Acme"]


def test_enums_and_booleans_are_written_by_name() -> None:
    session = SessionInfo(
        call_state=SessionCallState.CONNECTED,
        dial_state=SessionDialState.ACTIVE,
        hold_reason=SessionHoldReasons.TRANSFERRING,
        channel=FlowChannels.CHAT,
        direction=SessionDirections.OUTGOING,
        ended=True,
        was_missed=False,
        members=[
            SessionMemberInfo(
                role=SessionMemberRoles.AGENT, muted=True, is_original_member=False
            )
        ],
    )
    info = ET.fromstring(xml_of(session)).find(
        f"{{{SESSIONS}}}Sessions/{{{SESSIONS}}}SessionInfo"
    )
    assert info is not None

    def text(path: str) -> str | None:
        element = info.find(
            "/".join(f"{{{SESSIONS}}}{part}" for part in path.split("/"))
        )
        assert element is not None, path
        return element.text

    assert text("CallState") == "Connected"
    assert text("DialState") == "Active"
    assert text("HoldReason") == "Transferring"
    assert text("Channel") == "Chat"
    assert text("Direction") == "Outgoing"
    assert text("Ended") == "true"
    assert text("WasMissed") == "false"
    assert text("Members/SessionMemberInfo/Role") == "Agent"
    assert text("Members/SessionMemberInfo/Muted") == "true"
    assert text("Members/SessionMemberInfo/IsOriginalMember") == "false"


def test_null_members_are_nil_in_their_own_namespace() -> None:
    body = xml_of(SessionInfo(members=[SessionMemberInfo()]))
    info = ET.fromstring(body)[0][0]
    seed_info = ET.fromstring(seed_xml())[0][0]
    # Every member is still written, in the same order and namespaces as the seed.
    assert [c.tag for c in info] == [c.tag for c in seed_info]
    assert all(c.get(NIL) == "true" for c in info if c.tag != f"{{{SESSIONS}}}Members")
    member = info.find(f"{{{SESSIONS}}}Members/{{{SESSIONS}}}SessionMemberInfo")
    seed_member = seed_info.find(f".//{{{SESSIONS}}}SessionMemberInfo")
    assert member is not None and seed_member is not None
    assert [c.tag for c in member] == [c.tag for c in seed_member]
    assert all(c.get(NIL) == "true" for c in member)


def test_null_members_keep_the_declarations_they_would_carry() -> None:
    """.NET writes explicit declarations, then i:nil, then (as the tag closes)
    the implicit default-namespace redeclaration."""
    body = xml_of(SessionInfo(members=[SessionMemberInfo()]))
    assert f'<CreatedBy i:nil="true" xmlns="{API}" />'.encode() in body
    assert f'<Id i:nil="true" xmlns="{API}" />'.encode() in body
    assert (
        f'<CustomerBreadcrumb xmlns:d4p1="{CUSTOMERS}" i:nil="true" />'.encode() in body
    )
    assert f'<ApplicationData xmlns:d6p1="{ARRAYS}" i:nil="true" />'.encode() in body
    assert b'<AccountName i:nil="true" /><AnsweredById i:nil="true" />' in body
    assert b'<Log i:nil="true" />' in body


def test_empty_list_is_self_closing() -> None:
    expected = (
        DECLARATION + f"{ROOT_OPEN}<Sessions /></GetActiveSessionsResponse>".encode()
    )
    assert xml_of() == expected
    # A null list from the caller is sent as an empty one, never as i:nil.
    assert render("xml", GetActiveSessionsResponse()).body == expected
    assert b"<Log /><Members />" in xml_of(SessionInfo(log=[], members=[]))


def test_text_is_escaped_and_round_trips() -> None:
    tricky = 'a<b & "c" > d\r\ne'
    session = SessionInfo(
        account_name=tricky,
        members=[SessionMemberInfo(application_data={"k<&>": tricky})],
    )
    body = xml_of(session)
    assert b'<AccountName>a&lt;b &amp; "c" &gt; d&#xD;\ne</AccountName>' in body
    assert b"<d6p1:Key>k&lt;&amp;&gt;</d6p1:Key>" in body
    root = ET.fromstring(body)
    assert root.findtext(f".//{{{SESSIONS}}}AccountName") == tricky
    assert root.findtext(f".//{{{ARRAYS}}}Key") == "k<&>"
    assert root.findtext(f".//{{{ARRAYS}}}Value") == tricky


def test_characters_xml_cannot_carry_are_replaced_not_emitted() -> None:
    body = xml_of(SessionInfo(account_name="bell\x07\ud800end"))
    assert (
        ET.fromstring(body).findtext(f".//{{{SESSIONS}}}AccountName")
        == "bell\ufffd\ufffdend"
    )


def test_non_ascii_is_utf8_not_escaped() -> None:
    body = xml_of(SessionInfo(account_name="Zoë ☎"))
    assert "<AccountName>Zoë ☎</AccountName>".encode() in body


def test_media_type() -> None:
    rendered = render("xml", GetActiveSessionsResponse(sessions=[]))
    assert rendered.media_type == "application/xml"
    assert rendered.headers == {}


def test_error_response_uses_servicestack_namespace_and_datamember_order() -> None:
    body = render(
        "xml",
        ErrorResponse(
            response_status=ResponseStatus(
                error_code="Forbidden", message="Invalid Role"
            )
        ),
    ).body
    assert (
        body
        == DECLARATION
        + (
            f'<ErrorResponse xmlns:i="{XSI}" xmlns="{SERVICESTACK}"><ResponseStatus>'
            "<ErrorCode>Forbidden</ErrorCode><Message>Invalid Role</Message>"
            '<StackTrace i:nil="true" /><Errors />'
            f'<Meta xmlns:d3p1="{ARRAYS}" i:nil="true" />'
            "</ResponseStatus></ErrorResponse>"
        ).encode()
    )


def test_error_response_with_field_errors_and_meta() -> None:
    status = ResponseStatus(
        error_code="ValidationException",
        message="Validation failed",
        errors=[
            ResponseError(
                error_code="NotEmpty",
                field_name="Name",
                message="'Name' must not be empty.",
            )
        ],
        meta={"traceId": "t-1"},
    )
    body = render("xml", ErrorResponse(response_status=status)).body
    assert (
        b"<Errors><ResponseError><ErrorCode>NotEmpty</ErrorCode><FieldName>Name</FieldName>"
        b"<Message>'Name' must not be empty.</Message>"
        + f'<Meta xmlns:d5p1="{ARRAYS}" i:nil="true" />'.encode()
        + b"</ResponseError></Errors>"
    ) in body
    assert (
        f'<Meta xmlns:d3p1="{ARRAYS}"><d3p1:KeyValueOfstringstring>'
        "<d3p1:Key>traceId</d3p1:Key><d3p1:Value>t-1</d3p1:Value>"
        "</d3p1:KeyValueOfstringstring></Meta>"
    ).encode() in body
    status_element = ET.fromstring(body)[0]
    assert [c.tag for c in status_element] == [
        f"{{{SERVICESTACK}}}{name}"
        for name in ("ErrorCode", "Message", "StackTrace", "Errors", "Meta")
    ]
