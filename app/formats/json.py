"""ServiceStack's JSON: camelCase, nulls omitted, enums by name, compact UTF-8.

The Structs in `app.domain.dtos` already carry those rules (`rename="camel"`,
`omit_defaults=True`, str enums whose values are the C# member names), so
this is one reused encoder. Pure: no Starlette, no Redis.
"""

from __future__ import annotations

from typing import Final

import msgspec

# ServiceStack appends the charset to JSON only
# (HostConfig.AppendUtf8CharsetOnContentTypes).
MEDIA_TYPE: Final = "application/json; charset=utf-8"

# Built once: msgspec's perf guidance, and this sits on the snapshot read path.
_ENCODER: Final = msgspec.json.Encoder()


def encode(dto: msgspec.Struct) -> bytes:
    """The DTO as ServiceStack would write it."""
    return _ENCODER.encode(dto)
