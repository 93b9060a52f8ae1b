"""The metadata pages and /types/metadata, in-process on real Redis; the catalog
and the documentation Structs checked against the code they describe."""

from __future__ import annotations

import typing

import httpx
import msgspec

from app.apidocs import catalog, shapes
from app.apidocs.metadata import MetadataTypes
from app.domain import platform_events
from app.live import protocol
from app.domain.dtos import SessionInfo


async def test_index_lists_every_operation_and_description(client: httpx.AsyncClient) -> None:
    r = await client.get("/metadata")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    for op in catalog.OPERATIONS:
        assert f'href="/json/metadata?op={op.name}"' in r.text
    assert 'href="/openapi.json"' in r.text and 'href="/types/python"' in r.text


async def test_operation_page_has_description_auth_routes_and_dtos(client: httpx.AsyncClient) -> None:
    r = await client.get("/json/metadata?op=GetActiveSessions")
    assert r.status_code == 200
    for text in ("Get your active sessions. Will eventually replace GetMySessions", "Requires Authentication",
                 "Required role: User", "<th>GET</th><td>/sessions/active</td>", "public partial class SessionInfo",
                 "C# GetActiveSessions DTOs", "&quot;sessions&quot;: ["):
        assert text in r.text, text
    ts = await client.get("/json/metadata?op=GetMySessions&lang=typescript")
    assert "export class GetMySessions" in ts.text and "<th>GET</th><td>/sessions/my</td>" in ts.text


async def test_bad_metadata_requests_are_4xx_in_the_error_shape(client: httpx.AsyncClient) -> None:
    for url, status, code in (("/json/metadata?op=Nope", 404, "NotFound"),
                              ("/json/metadata?op=GetActiveSessions&lang=cobol", 400, "ValidationError"),
                              ("/types/cobol", 404, "NotFound")):
        r = await client.get(url)
        assert r.status_code == status, url
        assert r.json()["responseStatus"]["errorCode"] == code


async def test_types_metadata_is_servicestacks_shape(client: httpx.AsyncClient) -> None:
    r = await client.get("/types/metadata")
    meta = msgspec.json.decode(r.content, type=MetadataTypes)
    assert [o.request.name for o in meta.operations] == ["GetActiveSessions", "GetMySessions"]
    op = meta.operations[0]
    assert op.requires_auth and op.required_roles == ["User"] and op.routes[0].path == "/sessions/active"
    assert op.response is not None and op.response.name == "GetActiveSessionsResponse"
    info = next(t for t in meta.types if t.name == "SessionInfo")
    assert info.inherits is not None and info.inherits.name == "EntityInfo"
    props = {p.name: p for p in info.properties or []}
    assert props["Members"].type == "List`1" and props["Members"].generic_args == ["SessionMemberInfo"]
    assert props["Ended"].type == "Nullable`1" and props["Ended"].generic_args == ["Boolean"]
    assert props["CallState"].is_enum and props["CallState"].description == "The call state of the session"
    assert "Id" not in props  # declared by the EntityInfo base class
    assert r.json()["config"]["addReturnMarker"] is False


def test_catalog_describes_only_fields_the_models_have() -> None:
    for cls, described in catalog.DESCRIPTIONS.items():
        assert set(described) <= set(cls.__struct_fields__), cls
    for cls, base in catalog.BASES.items():
        assert cls.__struct_fields__[-len(base.__struct_fields__):] == base.__struct_fields__
    assert set(catalog.DESCRIPTIONS[SessionInfo]) | set(catalog.DESCRIPTIONS[catalog.EntityInfo]) \
        == set(SessionInfo.__struct_fields__)


def test_documented_live_messages_match_the_protocol() -> None:
    for documented, actual in ((shapes.SnapshotMessage, protocol._Snapshot), (shapes.PatchMessage, protocol._Patch)):
        assert documented.__struct_fields__ == actual.__struct_fields__
        assert documented.__struct_config__.tag == actual.__struct_config__.tag


def test_documented_events_are_the_ones_parsed() -> None:
    """The OpenAPI event shapes (apidocs/shapes.py) name the same tags and wire fields as the
    Structs that decode POST /events (domain/platform_events.py)."""
    def wire(union: object) -> dict[str, set[str]]:
        return {str(kind.__struct_config__.tag): {f.encode_name for f in msgspec.structs.fields(kind)}
                for kind in typing.get_args(union)}

    assert wire(shapes.Event) == wire(platform_events.Event)
