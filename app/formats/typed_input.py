"""Outside input into typed Structs, naming every field that is wrong (pure).

msgspec stops at the first error and names its place only inside the message
text. An entry point that must list every problem under its field name
converts the whole object first (one call, the usual case) and, only when that
fails, asks `problems`: the same conversion field by field, so the names come
from the Struct's fields and each message from msgspec, with no parsing of
msgspec's wording."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, TypeVar

import msgspec

S = TypeVar("S", bound=msgspec.Struct)


class Problem(NamedTuple):
    field: str  # the wire name; "" for the object as a whole
    message: str


def problems(obj: object, kind: type[msgspec.Struct], *, strict: bool = True,
             skip: frozenset[str] = frozenset()) -> list[Problem]:
    """Why `msgspec.convert(obj, kind)` fails: each given field that does not
    convert to its type, each unknown one (when `kind` forbids them), in the
    order given, then each required field that is missing. Fields in `skip` are
    left to the caller (already reported)."""
    if not isinstance(obj, Mapping):
        return [Problem("", "An object is required")]
    fields = {f.encode_name: f for f in msgspec.structs.fields(kind)}
    config = kind.__struct_config__
    found: list[Problem] = []
    for name, value in obj.items():
        if name in skip or name == config.tag_field:
            continue
        field = fields.get(name)
        if field is None:
            if config.forbid_unknown_fields:
                found.append(Problem(name, f"Unknown field {name!r}"))
            continue
        try:
            msgspec.convert(value, field.type, strict=strict)
        except msgspec.ValidationError as exc:
            found.append(Problem(name, str(exc)))
    found.extend(Problem(name, f"'{name}' is required") for name, field in fields.items()
                 if field.required and name not in obj and name not in skip)
    return found


def given(value: msgspec.Struct) -> dict[str, Any]:
    """The fields of a partial Struct (every default `msgspec.UNSET`) that were given: attribute -> value."""
    return {name: v for name in value.__struct_fields__ if (v := getattr(value, name)) is not msgspec.UNSET}


def partial(model: type[msgspec.Struct], name: str, *, without: frozenset[str] = frozenset()) -> type[msgspec.Struct]:
    """`model` with every field optional and `msgspec.UNSET` when absent (so an
    absent field, kept, differs from a null one, cleared), unknown fields
    refused; same wire names. `without`: wire names left out."""
    return msgspec.defstruct(
        name,
        [(f.name, f.type | msgspec.UnsetType, msgspec.field(default=msgspec.UNSET, name=f.encode_name))
         for f in msgspec.structs.fields(model) if f.encode_name not in without],
        forbid_unknown_fields=True, frozen=True, kw_only=True,
    )
