"""The published DTOs of `GetActiveSessions`, as msgspec Structs.

Every type, field and enum value here is spelled as on the seed page
(`../shared/seed/GetActiveSessions.txt`). Field names are snake_case in Python
and camelCase on the JSON wire (`rename="camel"`), nulls are omitted
(`omit_defaults=True`, every default is None) and `False`/`0` are kept.

This module is pure: it imports neither Starlette nor Redis.
"""

from __future__ import annotations

import enum
from typing import Final

import msgspec


class SessionDialState(str, enum.Enum):
    NONE = "None"
    ACTIVE = "Active"


class SessionCallState(str, enum.Enum):
    DISCONNECTED = "Disconnected"
    RINGING = "Ringing"
    CONNECTED = "Connected"
    HOLD = "Hold"
    PASSIVE = "Passive"


class SessionQueueStates(str, enum.Enum):
    NONE = "None"
    QUEUED = "Queued"
    RINGING = "Ringing"
    CONNECTED = "Connected"
    HOLD = "Hold"
    DISCONNECTED = "Disconnected"


class FlowChannels(str, enum.Enum):
    VOICE = "Voice"
    CHAT = "Chat"
    FAX = "Fax"


class SessionHoldReasons(str, enum.Enum):
    NONE = "None"
    TRANSFERRING = "Transferring"


class SessionMemberCallState(str, enum.Enum):
    NONE = "None"
    RINGING = "Ringing"
    CONNECTED = "Connected"
    HOLD = "Hold"


class SessionMemberRoles(str, enum.Enum):
    NONE = "None"
    CALLER = "Caller"
    AGENT = "Agent"
    TRANSFER = "Transfer"


class SessionDirections(str, enum.Enum):
    INCOMING = "Incoming"
    OUTGOING = "Outgoing"


class Dto(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Base of every wire type: camelCase, nulls omitted."""


class EntityInfo(Dto):
    id: str | None = None
    date_created: str | None = None
    date_last_modified: str | None = None
    created_by: str | None = None
    last_modified_by: str | None = None


class CustomerBreadcrumb(Dto):
    id: str | None = None
    name: str | None = None


class SessionLogInfo(Dto):
    date: str | None = None
    message: str | None = None


class SessionMemberInfo(Dto):
    identity: str | None = None
    endpoint_id: str | None = None
    display_name: str | None = None
    is_original_member: bool | None = None
    avatar_url: str | None = None
    application_data: dict[str, str] | None = None
    call_state: SessionMemberCallState | None = None
    role: SessionMemberRoles | None = None
    call_sid: str | None = None
    muted: bool | None = None


class SessionInfo(Dto):
    """A call session. Its own fields come first, then EntityInfo's, as
    ServiceStack writes JSON (derived members, then base members)."""

    dial_state: SessionDialState | None = None
    call_state: SessionCallState | None = None
    queue_state: SessionQueueStates | None = None
    account_id: str | None = None
    account_name: str | None = None
    customer_id: str | None = None
    customer_breadcrumb: list[CustomerBreadcrumb] | None = None
    customer_name: str | None = None
    endpoint_id: str | None = None
    endpoint_name: str | None = None
    date_completed: str | None = None
    destination: str | None = None
    to_address: str | None = None
    from_address: str | None = None
    from_name: str | None = None
    answered_by_name: str | None = None
    queue_member_id: str | None = None
    channel: FlowChannels | None = None
    ended: bool | None = None
    outcome: str | None = None
    call_sid: str | None = None
    console_data: str | None = None
    hold_queue_name: str | None = None
    held_by_user_id: str | None = None
    hold_reason: SessionHoldReasons | None = None
    conference_sid: str | None = None
    display_name: str | None = None
    log: list[SessionLogInfo] | None = None
    members: list[SessionMemberInfo] | None = None
    callback_number: str | None = None
    answered_by_id: str | None = None
    direction: SessionDirections | None = None
    from_phone_number: str | None = None
    most_recent_participant_call_sid: str | None = None
    was_missed: bool | None = None
    ring_queue_id: str | None = None
    # EntityInfo members (the C# base class), kept last as on the wire.
    id: str | None = None
    date_created: str | None = None
    date_last_modified: str | None = None
    created_by: str | None = None
    last_modified_by: str | None = None


class GetActiveSessionsResponse(Dto):
    sessions: list[SessionInfo] | None = None


class ResponseError(Dto):
    error_code: str | None = None
    field_name: str | None = None
    message: str | None = None
    meta: dict[str, str] | None = None


class ResponseStatus(Dto):
    error_code: str | None = None
    message: str | None = None
    stack_trace: str | None = None
    errors: list[ResponseError] | None = None
    meta: dict[str, str] | None = None


class ErrorResponse(Dto):
    response_status: ResponseStatus | None = None


# Which SessionInfo members the C# base class EntityInfo declares: XML writes
# them in EntityInfo's own namespace, ahead of SessionInfo's members.
ENTITY_FIELDS: Final[tuple[str, ...]] = tuple(EntityInfo.__struct_fields__)


def pascal(name: str) -> str:
    """`most_recent_participant_call_sid` -> `MostRecentParticipantCallSid`."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))
