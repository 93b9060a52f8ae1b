"""`GET /openapi.json`: OpenAPI 3.1 for every HTTP route, its schemas generated from
the msgspec models (`msgspec.json.schema_components`), with the auth schemes and
the `responseStatus` error shape. The WebSocket side of `/sessions/live` is in
docs/asyncapi.yaml (OpenAPI cannot describe it).

Pure: no Starlette, no Redis.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from app.apidocs import shapes
from app.apidocs.catalog import OPERATIONS
from app.apidocs.metadata import MetadataTypes
from app.domain.dtos import ErrorResponse, GetActiveSessionsResponse
from app.domain.ids import SCHEMA_PATTERN
from app.domain.presence import PresenceReply
from app.live.protocol import ConnectionsReply
from app.sweep.counts import SweepCounts

Json = dict[str, Any]

VERSION: Final = "0.1.0"
REF: Final = "#/components/schemas/{name}"
FORMATS: Final = ("json", "xml", "jsv", "csv")
# What each wire format of a read is sent as (app.formats).
READ_MEDIA: Final = {"application/json": None, "application/xml": "xml", "text/jsv": "jsv", "text/csv": "csv"}
SCHEMA_TYPES: Final = (
    GetActiveSessionsResponse, ErrorResponse, shapes.EventBatch, shapes.EventsReply, shapes.ChangesReply,
    shapes.Health, shapes.ConsoleConfig, shapes.DevTokenRequest, shapes.DevToken, shapes.TwilioCallback,
    MetadataTypes, PresenceReply, SweepCounts, ConnectionsReply,
)

_ERRORS: Final = {
    400: "Invalid input: `responseStatus.errors` names each field",
    401: "Missing, invalid or expired credentials",
    403: "Authenticated, but not allowed (`Invalid Role`)",
    404: "No such operation, format or resource",
    406: "Not acceptable",
    413: "Body over MAX_BODY_BYTES",
    503: "The session store (or live push) is unavailable; retry",
}


def _ref(name: str) -> Json:
    return {"$ref": REF.format(name=name)}


def _json(schema: Json, description: str) -> Json:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(status: int) -> Json:
    """The error shape, in whichever format the request negotiated."""
    content: Json = {"application/json": {"schema": _ref("ErrorResponse")}}
    for media in ("application/xml", "text/jsv", "text/csv"):
        content[media] = {"schema": {"type": "string"}}
    response: Json = {"description": _ERRORS[status], "content": content}
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return response


def _responses(ok: dict[int, Json], *errors: int) -> Json:
    return {**{str(k): v for k, v in ok.items()}, **{str(s): _error(s) for s in errors}}


def _param(name: str, where: str, schema: Json, description: str, required: bool = False) -> Json:
    return {"name": name, "in": where, "required": required or where == "path", "schema": schema,
            "description": description}


_FORMAT_QUERY: Final = _param("format", "query", {"type": "string"},
                              "json, xml, jsv or csv (ServiceStack's ?format=; anything else is ignored)")
_USER: Final[list[Json]] = [{"bearerAuth": []}, {"ssTokCookie": []}]


def _read_ok() -> Json:
    content: Json = {"application/json": {"schema": _ref("GetActiveSessionsResponse")}}
    for media, fmt in READ_MEDIA.items():
        if fmt is not None:
            content[media] = {"schema": {"type": "string",
                                         "description": f"The same response in ServiceStack's {fmt.upper()} layout"}}
    return {
        "200": {"description": "The caller's active sessions", "content": content,
                "headers": {"ETag": {"schema": {"type": "string"}, "description": "The change-log position"}}},
        "304": {"description": "Unchanged since If-None-Match"},
        **{str(s): _error(s) for s in (401, 403, 404, 503)},
    }


def _read(summary: str, op_id: str, params: list[Json], description: str = "") -> Json:
    return {
        "summary": summary, "operationId": op_id, "tags": ["sessions"], "description": description,
        "security": _USER,
        "parameters": [*params, _FORMAT_QUERY,
                       _param("If-None-Match", "header", {"type": "string"}, "An ETag from an earlier read")],
        "responses": _read_ok(),
    }


def _reads() -> Json:
    names = [op.name for op in OPERATIONS]
    ext = _param("ext", "path", {"type": "string", "enum": list(FORMATS)}, "Response format")
    op_param = _param("op", "path", {"type": "string"},
                      f"Operation name, any case ({', '.join(names)}), optionally with a .json/.xml/.jsv/.csv suffix")
    fmt = _param("fmt", "path", {"type": "string", "enum": list(FORMATS)}, "Response format")
    paths: Json = {}
    for op in OPERATIONS:
        route = op.routes[0].path
        paths[route] = {"get": _read(op.description, op.name, [])}
        paths[f"{route}.{{ext}}"] = {"get": _read(op.description, f"{op.name}WithExtension", [ext])}
    predefined = "ServiceStack's pre-defined route (what the Python and TypeScript clients call)"
    paths["/api/{op}"] = {
        "get": _read("Any operation by name", "ApiOperationGet", [op_param], predefined),
        "post": {**_read("Any operation by name", "ApiOperationPost", [op_param], predefined),
                 "requestBody": {"required": False, "content": {"application/json": {"schema": {"type": "object"}}}}},
    }
    paths["/{fmt}/reply/{op}"] = {
        "get": _read("Any operation by name, in a format", "ReplyOperationGet", [fmt, op_param], predefined),
        "post": {**_read("Any operation by name, in a format", "ReplyOperationPost", [fmt, op_param], predefined),
                 "requestBody": {"required": False, "content": {"application/json": {"schema": {"type": "object"}}}}},
    }
    return paths


def _writes() -> Json:
    twilio_form = {"required": True, "content": {"application/x-www-form-urlencoded": {
        "schema": {**_ref("TwilioCallback")}}}}
    signature = _param("X-Twilio-Signature", "header", {"type": "string"},
                       "HMAC-SHA1 of PUBLIC_URL + path + sorted form fields, base64", required=True)

    def twilio(summary: str, op_id: str) -> Json:
        return {"post": {
            "summary": summary, "operationId": op_id, "tags": ["twilio"], "security": [{"twilioSignature": []}],
            "parameters": [signature], "requestBody": twilio_form,
            "responses": _responses({204: {"description": "Accepted (applied, duplicate or dead-lettered)"}},
                                    400, 403, 413, 503),
        }}

    return {
        "/events": {"post": {
            "summary": "Apply a batch of platform events, each exactly once", "operationId": "PostEvents",
            "tags": ["events"], "security": [{"eventsApiKey": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("EventBatch")}}},
            "responses": _responses({200: _json(_ref("EventsReply"), "What happened to each event")},
                                    400, 401, 413, 503),
        }},
        "/twilio/status": twilio("Twilio call status callback", "TwilioStatus"),
        "/twilio/conference": twilio("Twilio conference status callback", "TwilioConference"),
    }


def _live() -> Json:
    since = _param("since", "query", {"type": "string"}, "A position `<epoch>:<cursor>` to resume from")
    return {
        "/sessions/live": {"get": {
            "summary": "Live changes as Server-Sent Events (or a WebSocket upgrade: see docs/asyncapi.yaml)",
            "operationId": "LiveEvents", "tags": ["live"], "security": _USER,
            "parameters": [
                _param("Accept", "header", {"type": "string", "const": "text/event-stream"},
                       "Required for SSE; without it (and no WebSocket upgrade) the answer is 406", required=True),
                _param("Last-Event-ID", "header", {"type": "string"}, "Resume position (wins over `since`)"),
                since,
            ],
            "responses": _responses({200: {
                "description": "An endless event stream; each `data:` is a live message (docs/asyncapi.yaml)",
                "content": {"text/event-stream": {"schema": {"type": "string"}}}}}, 400, 401, 403, 406, 503),
        }},
        "/sessions/changes": {"get": {
            "summary": "Long-poll: patches since `since`, a reset snapshot, or nothing after `wait` seconds",
            "operationId": "LongPollChanges", "tags": ["live"], "security": _USER,
            "parameters": [since, _param("wait", "query", {"type": "number", "minimum": 0},
                                         "Seconds to wait for a change (capped by LIVE_POLL_MAX_WAIT)")],
            "responses": _responses({200: _json(_ref("ChangesReply"), "Messages, and the position after them")},
                                    400, 401, 403, 503),
        }},
    }


def _presence() -> Json:
    endpoint = _param("endpointId", "query", {"type": "string", "pattern": SCHEMA_PATTERN},
                      "Only this endpoint (anyone but a Manager or Admin may ask only for their own)")
    return {"/presence": {"get": {
        "summary": "Which endpoints of the caller's account are connected to live push right now",
        "operationId": "GetPresence", "tags": ["live"], "security": _USER, "parameters": [endpoint],
        "description": "Managers and Admins see every present endpoint of their account, anyone else their own. "
                       "A leave shows within PRESENCE_LEASE_SECONDS + PRESENCE_INTERVAL_SECONDS of a connection's "
                       "end, its process killed included (docs/protocol.md, Presence).",
        "responses": _responses({200: _json(_ref("PresenceReply"), "The present endpoints")}, 400, 401, 403, 503),
    }}, "/live/connections": {"get": {
        "summary": "The caller's account's live connections on this process, with their acknowledged lag",
        "operationId": "GetLiveConnections", "tags": ["live"], "security": _USER,
        "description": "Managers and Admins only. `acked` and the lag are null for a connection that never sent "
                       "`ack` (docs/protocol.md, Acknowledgements). Each process answers for its own connections.",
        "responses": _responses({200: _json(_ref("ConnectionsReply"), "The connections")}, 401, 403),
    }}}


def _operations_and_docs() -> Json:
    text = {"content": {"text/plain": {"schema": {"type": "string"}}}}
    html = {"content": {"text/html": {"schema": {"type": "string"}}}}
    lang = _param("lang", "query", {"type": "string", "enum": ["csharp", "python", "typescript"]},
                  "DTO language (default csharp)")
    op = _param("op", "query", {"type": "string", "enum": [o.name for o in OPERATIONS]},
                "Operation (without it: the index)")
    health = _json(_ref("Health"), "Ready: the store answers")

    def get(summary: str, op_id: str, tag: str, ok: Json, *errors: int, **extra: Any) -> Json:
        return {"get": {"summary": summary, "operationId": op_id, "tags": [tag],
                        "responses": _responses({200: ok}, *errors), **extra}}

    paths: Json = {
        "/health": get("Readiness (alias of /health/ready)", "Health", "operations", health, 503),
        "/health/ready": get("Readiness: 200 when the store answers, else 503", "HealthReady", "operations",
                             health, 503),
        "/health/live": get("Liveness: the process answers", "HealthLive", "operations",
                            _json(_ref("Health"), "Live")),
        "/metrics": get("Prometheus metrics of this process (text format 0.0.4)", "Metrics", "operations",
                        {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
                        401, security=[{}, {"metricsToken": []}],
                        description="Each process serves its own; scrape every process. "
                                    "Bearer METRICS_TOKEN when it is set."),
        "/sessions/sweep": get("What the sweep did for the caller's account (every process)", "SweepCounts",
                               "operations", _json(_ref("SweepCounts"), "Counts since they began"), 401, 403, 503,
                               security=[{"bearerAuth": []}],
                               description="Stuck sessions taken up, statuses learnt from Twilio's REST API, calls "
                                           "lost, sessions marked stale; see docs/twilio.md. Not part of the "
                                           "GetActiveSessions contract."),
        "/types/metadata": get("ServiceStack MetadataTypes (what native-types generators read)", "TypesMetadata",
                               "metadata", _json(_ref("MetadataTypes"), "MetadataTypes")),
        "/metadata": get("HTML index of the operations", "MetadataIndex", "metadata", {"description": "HTML", **html}),
        "/json/metadata": get("HTML page of one operation: description, auth, routes, DTOs", "MetadataOperation",
                              "metadata", {"description": "HTML", **html}, 400, 404, parameters=[op, lang]),
        "/openapi.json": get("This document", "OpenApi", "metadata",
                             _json({"type": "object"}, "OpenAPI 3.1")),
        "/": get("The live console (HTML)", "Console", "console", {"description": "HTML", **html}),
        "/console/config": get("Console settings", "ConsoleConfig", "console",
                               _json(_ref("ConsoleConfig"), "Settings")),
        "/console/dev-token": {"post": {
            "summary": "A demo token (development only; 404 elsewhere)", "operationId": "DevToken",
            "tags": ["console"],
            "requestBody": {"required": False, "content": {"application/json": {"schema": _ref("DevTokenRequest")}}},
            "responses": _responses({200: _json(_ref("DevToken"), "A signed token")}, 400, 404, 413),
        }},
    }
    for name in ("python", "typescript", "csharp"):
        paths[f"/types/{name}"] = get(f"Add ServiceStack Reference: {name} DTOs", f"Types{name.title()}",
                                      "metadata", {"description": f"{name} source", **text})
    return paths


def _security_schemes() -> Json:
    return {
        "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                       "description": "HS256 (JWT_SECRET) or RS256 (JWT_PUBLIC_KEY) token with accountId, "
                                      "endpointId and a `roles` claim; role User required"},
        "ssTokCookie": {"type": "apiKey", "in": "cookie", "name": "ss-tok",
                        "description": "The same JWT in ServiceStack's cookie"},
        "eventsApiKey": {"type": "http", "scheme": "bearer", "description": "EVENTS_API_KEY"},
        "twilioSignature": {"type": "apiKey", "in": "header", "name": "X-Twilio-Signature",
                            "description": "Twilio's request signature (TWILIO_AUTH_TOKEN)"},
        "metricsToken": {"type": "http", "scheme": "bearer", "description": "METRICS_TOKEN, when set"},
    }


def document(server_url: str) -> Json:
    """The OpenAPI 3.1 document, served from `server_url`."""
    _, schemas = msgspec.json.schema_components(SCHEMA_TYPES, ref_template=REF)
    return {
        "openapi": "3.1.0",
        "info": {"title": "callstate", "version": VERSION,
                 "description": "Real-time call-session state: ServiceStack-compatible GetActiveSessions, "
                                "the platform's events API, Twilio webhooks, live changes. Every error is "
                                '`{"responseStatus":{"errorCode","message","errors"}}` in the negotiated format.'},
        "servers": [{"url": server_url}],
        "tags": [{"name": t} for t in ("sessions", "live", "events", "twilio", "operations", "metadata", "console")],
        "paths": {**_reads(), **_live(), **_presence(), **_writes(), **_operations_and_docs()},
        "components": {"schemas": schemas, "securitySchemes": _security_schemes()},
    }
