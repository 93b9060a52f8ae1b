"""Wire shapes written down as Structs so the OpenAPI document can describe them the
same way as the models: bodies the service builds or parses by hand, and the events
batch as a reader should see it (`session` as SessionInfo, ids with their pattern;
app.domain.platform_events decodes it with partial patches generated from the
models). They describe, they are not used on the hot path; the schemathesis test
checks the service's answers against them, and tests/apidocs/test_pages.py checks
them against app.domain.platform_events and app.live.protocol.

Pure: no Starlette, no Redis.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from app.domain.platform_events import MAX_TEXT
from app.domain.ids import ID_RULE, SCHEMA_PATTERN
from app.domain.dtos import SessionInfo, SessionMemberInfo

Id = Annotated[str, msgspec.Meta(pattern=SCHEMA_PATTERN, description=ID_RULE)]
Timestamp = Annotated[str, msgspec.Meta(description="ISO 8601 with a time zone, e.g. 2024-05-01T10:00:00Z")]
Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]


class _Event(msgspec.Struct, tag_field="type", rename="camel", kw_only=True):
    event_id: Annotated[str, msgspec.Meta(min_length=1, max_length=256,
                                          description="Idempotency key, per account")]
    account_id: Id
    session_id: Id
    occurred_at: Timestamp


class SessionUpsertEvent(_Event, tag="session.upsert"):
    """Given SessionInfo fields are set, an explicit null clears one, absent fields are kept."""

    session: SessionInfo


class SessionMemberEvent(_Event, tag="session.member"):
    """A member, matched by callSid, else identity; merged, or added if new."""

    member: SessionMemberInfo


class SessionLogEvent(_Event, tag="session.log"):
    message: Text
    date: Timestamp | None = None


class SessionEndEvent(_Event, tag="session.end"):
    outcome: Text | None = None


Event = SessionUpsertEvent | SessionMemberEvent | SessionLogEvent | SessionEndEvent


class EventBatch(msgspec.Struct):
    """Validated whole: one invalid event and nothing is applied (at most MAX_EVENTS_PER_BATCH)."""

    events: Annotated[list[Event], msgspec.Meta(min_length=1)]


class EventResult(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    event_id: str
    status: Literal["applied", "unchanged", "duplicate", "rejected"]
    cursor: int | None = None
    message: str | None = None


class EventsReply(msgspec.Struct):
    applied: int
    duplicates: int
    results: list[EventResult]


class SnapshotMessage(msgspec.Struct, tag_field="type", tag="snapshot", rename="camel", kw_only=True):
    """Every session the caller may see, keyed by id; `reset`: replaces what the client had."""

    epoch: str
    cursor: int
    sessions: dict[str, SessionInfo]
    reset: bool = False
    digest: Annotated[str | None, msgspec.Meta(description="The state digest at this position (docs/protocol.md, \"State digest\")")] = None


class PatchMessage(msgspec.Struct, tag_field="type", tag="patch", rename="camel", kw_only=True):
    """RFC 6902 JSON Patch ops against the sessions map (paths `/<sessionId>/...`)."""

    cursor: int
    ops: list[dict[str, Any]]
    digest: Annotated[str | None, msgspec.Meta(description="The state digest at this position (docs/protocol.md, \"State digest\")")] = None


class ChangesReply(msgspec.Struct):
    """Long-poll: the position after `messages` (send it back as `since`)."""

    epoch: str | None
    cursor: int
    messages: list[SnapshotMessage | PatchMessage]
    digest: Annotated[str | None, msgspec.Meta(description="With digest=1: the state digest at `cursor`")] = None


class Health(msgspec.Struct):
    status: Literal["ok", "unavailable"]
    live: bool
    redis: bool | None = None


class ConsoleConfig(msgspec.Struct, rename="camel"):
    dev_tokens: bool


class DevTokenRequest(msgspec.Struct):
    role: Literal["agent", "manager"] = "agent"


class DevToken(msgspec.Struct, rename="camel"):
    token: str
    expires_at: int


class TwilioCallback(msgspec.Struct, rename="pascal", kw_only=True):
    """The form fields Twilio posts (more may come; all are signed)."""

    account_sid: str
    call_sid: str | None = None
    call_status: str | None = None
    conference_sid: str | None = None
    status_callback_event: str | None = None
    timestamp: str | None = None
