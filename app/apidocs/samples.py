"""Sample values for the metadata pages: every member filled with a placeholder
(`String`, `false`, an enum's first member, one list item), as ServiceStack's
metadata pages show a response.

Pure: no Starlette, no Redis.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec


def sample(tp: Any) -> Any:
    """A placeholder value of the (msgspec-annotated) type `tp`."""
    return _of(msgspec.inspect.type_info(tp))


def _of(info: msgspec.inspect.Type) -> Any:
    if isinstance(info, msgspec.inspect.UnionType):
        return _of(next(t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)))
    if isinstance(info, msgspec.inspect.StructType):
        return info.cls(**{f.name: _of(f.type) for f in info.fields})
    if isinstance(info, msgspec.inspect.ListType):
        return [_of(info.item_type)]
    if isinstance(info, msgspec.inspect.DictType):
        return {_of(info.key_type): _of(info.value_type)}
    if isinstance(info, msgspec.inspect.EnumType):
        first: enum.Enum = next(iter(info.cls))
        return first
    if isinstance(info, msgspec.inspect.BoolType):
        return False
    if isinstance(info, (msgspec.inspect.IntType, msgspec.inspect.FloatType)):
        return 0
    return "String"
