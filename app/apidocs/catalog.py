"""What the published API says about the models beyond their fields.

The Structs in app.domain.dtos carry names, types and order. The published
ServiceStack service (`../shared/seed/GetActiveSessions.txt`) also says which
CLR namespace each type lives in, which C# base class declares which members,
the `[ApiMember]` descriptions, and which operations exist with their routes
and auth. That is kept here, once, and checked against the models by
tests/apidocs/test_pages.py.

Pure: no Starlette, no Redis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import msgspec

from app.formats.xml import NS_API, NS_CUSTOMERS, NS_SESSIONS
from app.domain.dtos import (
    CustomerBreadcrumb,
    EntityInfo,
    FlowChannels,
    GetActiveSessionsResponse,
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


def clr_namespace(xml_namespace: str) -> str:
    """`http://schemas.datacontract.org/2004/07/Voice.Api.Sessions` -> `Voice.Api.Sessions`:
    DataContract XML namespaces are the CLR namespace under a fixed prefix."""
    return xml_namespace.rsplit("/", 1)[-1]


# The XML writer's namespaces (app.formats.xml) are the source; enums have none
# on the wire, and live beside the sessions that use them.
NAMESPACES: Final[dict[type, str]] = {
    EntityInfo: clr_namespace(NS_API),
    CustomerBreadcrumb: clr_namespace(NS_CUSTOMERS),
    **{
        cls: clr_namespace(NS_SESSIONS)
        for cls in (
            SessionInfo, SessionLogInfo, SessionMemberInfo, GetActiveSessionsResponse,
            SessionDialState, SessionCallState, SessionQueueStates, FlowChannels,
            SessionHoldReasons, SessionMemberCallState, SessionMemberRoles, SessionDirections,
        )
    },
}

# C# inheritance: SessionInfo : EntityInfo. The Struct repeats EntityInfo's
# fields last (the JSON order); the C# class declares only its own.
BASES: Final[dict[type[msgspec.Struct], type[msgspec.Struct]]] = {SessionInfo: EntityInfo}

# `[ApiMember(Description=...)]` per type and Python field name, as published.
DESCRIPTIONS: Final[dict[type[msgspec.Struct], dict[str, str]]] = {
    EntityInfo: {
        "id": "The ID of the object",
        "date_created": "The date the object was created",
        "date_last_modified": "The date the object was last modified",
        "created_by": "The user that created this object",
        "last_modified_by": "The user that last modified this object",
    },
    SessionInfo: {
        "dial_state": "The state of the session",
        "call_state": "The call state of the session",
        "queue_state": "The queue state of the session",
        "account_id": "The ID of the account associated with the flow",
        "account_name": "The name of the account associated with the session",
        "customer_id": "The ID of the customer this session is associated with",
        "customer_breadcrumb": "The customer breadcrumb this session is associated with",
        "customer_name": "The name of the customer this session is associated with",
        "endpoint_id": "The ID of the endpoint associated with this session",
        "endpoint_name": "The name of the endpoint associated with this session",
        "date_completed": "The date the call completed",
        "destination": "The destination of the session (e.g. what was entered into the Dial box)",
        "to_address": "The to address if any",
        "from_address": "The from address if any",
        "from_name": "The from name if any",
        "answered_by_name": "Answered by name (if any)",
        "queue_member_id": "The ID of the queue member assigned to this call",
        "channel": "The flow channel",
        "ended": "Has the session ended",
        "outcome": "The outcome of the call",
        "call_sid": "The twilio Call SID of this session",
        "console_data": "Any console data for this session",
        "hold_queue_name": "The name of the hold queue for this call",
        "held_by_user_id": "The user ID who put this call on hold",
        "hold_reason": "The reason for the hold",
        "conference_sid": "The SID of the conference if in a conference call",
        "display_name": "The display name for this session",
        "log": "The log entries for this session",
        "members": "The members of this session",
        "callback_number": "The callback number (typically used for SIP to User calls)",
        "answered_by_id": "The ID of the endpoint that answered",
        "direction": "Is this session incoming or outgoing?",
        "from_phone_number": "The phone number that this session is coming from (used with SMS chats)",
        "most_recent_participant_call_sid": "The Call SID of the most recently added conference participant",
        "was_missed": "Was this session missed?",
        "ring_queue_id": "The ring queue that the call is currently in",
    },
}


@dataclass(frozen=True)
class Route:
    path: str
    verbs: str  # "GET", or "GET,POST"


@dataclass(frozen=True)
class Operation:
    """A ServiceStack operation we serve: request DTO name, response Struct, routes, auth."""

    name: str
    description: str
    response: type[msgspec.Struct]
    routes: tuple[Route, ...]
    required_role: str
    namespace: str = clr_namespace(NS_SESSIONS)

    @property
    def all_routes(self) -> tuple[Route, ...]:
        """The declared routes, then the pre-defined ones every ServiceStack operation has."""
        return (*self.routes, Route(f"/api/{self.name}", "GET,POST"), Route(f"/json/reply/{self.name}", "GET,POST"))


OPERATIONS: Final[tuple[Operation, ...]] = (
    Operation(
        name="GetActiveSessions",
        description="Get your active sessions. Will eventually replace GetMySessions",
        response=GetActiveSessionsResponse,
        routes=(Route("/sessions/active", "GET"),),
        required_role="User",
    ),
    Operation(
        name="GetMySessions",
        description="Get your active sessions (the older operation; the same sessions and response as GetActiveSessions)",
        response=GetActiveSessionsResponse,
        routes=(Route("/sessions/my", "GET"),),
        required_role="User",
    ),
)

OPERATIONS_BY_NAME: Final[dict[str, Operation]] = {op.name.lower(): op for op in OPERATIONS}
