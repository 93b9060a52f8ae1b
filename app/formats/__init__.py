"""Wire formats of `GetActiveSessions`: pick one per request, render a DTO in it.

`negotiate()` follows ServiceStack's precedence (see `negotiation`); `render()`
turns a response or error DTO into the bytes, media type and headers
ServiceStack would send. Each format lives in its own module; every encoder
and per-type layout is built once at import.

Pure: no Starlette, no Redis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import msgspec

from app.formats import csv, json, jsv, xml
from app.formats.negotiation import Format, negotiate
from app.domain.dtos import ErrorResponse, GetActiveSessionsResponse, ResponseStatus

__all__ = ["Format", "Rendered", "negotiate", "render"]

Dto = GetActiveSessionsResponse | ErrorResponse


@dataclass(frozen=True)
class Rendered:
    body: bytes
    media_type: str
    headers: dict[str, str] = field(default_factory=dict)


_ENCODERS: Final[dict[Format, tuple[Callable[[Dto], bytes], str]]] = {
    "json": (json.encode, json.MEDIA_TYPE),
    "xml": (xml.encode, xml.MEDIA_TYPE),
    "jsv": (jsv.encode, jsv.MEDIA_TYPE),
    "csv": (csv.encode, csv.MEDIA_TYPE),
}


def render(fmt: Format, dto: Dto, op_name: str = "GetActiveSessions") -> Rendered:
    """`dto` in format `fmt`, with the media type and headers to send it with."""
    encode, media_type = _ENCODERS[fmt]
    headers = (
        {"Content-Disposition": csv.content_disposition(op_name)}
        if fmt == "csv"
        else {}
    )
    return Rendered(encode(normalize(dto)), media_type, headers)


def normalize(dto: Dto) -> Dto:
    """Fill the lists clients rely on being present: `{"sessions":[]}` rather
    than `{}` (a null result would be a 204 in ServiceStack), and an error's
    `errors: []`, which ServiceStack always sets on a thrown error."""
    if isinstance(dto, GetActiveSessionsResponse):
        return (
            dto
            if dto.sessions is not None
            else msgspec.structs.replace(dto, sessions=[])
        )
    status = dto.response_status or ResponseStatus()
    if status.errors is None:
        status = msgspec.structs.replace(status, errors=[])
    return (
        dto if status is dto.response_status else ErrorResponse(response_status=status)
    )
