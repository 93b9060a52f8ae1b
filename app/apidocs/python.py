"""`/types/python`: MetadataTypes as a Python module of dataclasses, in the layout
ServiceStack's Python generator writes (the seed page's module is one).

Pure: no Starlette, no Redis.
"""

from __future__ import annotations

import re
from typing import Final

from app.apidocs.header import flag, options_block
from app.apidocs.members import attribute_text
from app.apidocs.metadata import MetadataAttribute, MetadataPropertyType, MetadataType, MetadataTypes, ordered_types

DEFAULT_IMPORTS: Final = (
    "datetime", "decimal", "marshmallow.fields:*", "servicestack:*", "typing:*",
    "dataclasses:dataclass/field", "dataclasses_json:dataclass_json/LetterCase/Undefined/config",
    "enum:Enum/IntEnum",
)
DATACLASS_JSON: Final = "@dataclass_json(letter_case=LetterCase.CAMEL, undefined=Undefined.EXCLUDE)"
ALIASES: Final = {"String": "str", "Boolean": "bool", "Int32": "int", "Double": "float"}
INDENT: Final = "    "


def snake(name: str) -> str:
    """`MostRecentParticipantCallSid` -> `most_recent_participant_call_sid`."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def enum_member(name: str) -> str:
    """ServiceStack's EnumNameFormat: `Transferring` -> `TRANSFERRING`, `InProgress` -> `IN_PROGRESS`."""
    if "_" in name:
        return name.upper()
    return snake(name).upper() if any(c.islower() for c in name) else name


def _type(name: str, args: list[str] | None) -> str:
    if name == "Nullable`1" and args:
        return _type(args[0], None)
    if name == "List`1" and args:
        return f"List[{_type(args[0], None)}]"
    if name == "Dictionary`2" and args:
        return f"Dict[{_type(args[0], None)}, {_type(args[1], None)}]"
    return ALIASES.get(name, name)


def _attributes(attrs: list[MetadataAttribute] | None) -> list[str]:
    return [f"# @{attribute_text(a)}" for a in attrs or []]



def _docs(text: str) -> list[str]:
    return ['"""', text, '"""']


def _enum(t: MetadataType) -> list[str]:
    body = [f"{enum_member(n)} = '{n}'" for n in t.enum_names or []] or ["pass"]
    return [f"class {t.name}(str, Enum):", *(INDENT + line for line in body)]


def _properties(props: list[MetadataPropertyType]) -> list[str]:
    lines: list[str] = []
    spaced = False
    for i, p in enumerate(props):
        if spaced:
            lines.append("")
        attrs = _attributes(p.attributes)
        spaced = bool(attrs)
        lines += attrs
        lines.append(f"{snake(p.name)}: Optional[{_type(p.type, p.generic_args)}] = None")
        if p.description:
            lines += _docs(p.description)
            spaced = True
            if i != len(props) - 1:
                lines.append("")
    return lines


def _class(t: MetadataType) -> list[str]:
    bases = t.inherits.name if t.inherits else ""
    head = [DATACLASS_JSON, "@dataclass", f"class {t.name}({bases}):" if bases else f"class {t.name}:"]
    body: list[str] = []
    if t.description:
        body += [*_docs(t.description), ""]
    props = _properties(t.properties or [])
    body += props or ["pass"]
    return [*head, *(INDENT + line if line else "" for line in body)]


def _type_block(t: MetadataType) -> list[str]:
    lines = ["", "", *_attributes(t.attributes)]
    return lines + (_enum(t) if t.is_enum else _class(t))


def module(meta: MetadataTypes) -> str:
    """The imports and every type, without the options header (as on a metadata page)."""
    lines = [_import(i) for i in DEFAULT_IMPORTS]
    for t, _role in ordered_types(meta):
        lines += _type_block(t)
    return "\n".join(lines) + "\n\n"


def _import(spec: str) -> str:
    module_name, sep, names = spec.partition(":")
    return f"from {module_name} import {names.replace('/', ', ')}" if sep else f"import {spec}"


def render(meta: MetadataTypes, now: str) -> str:
    """`/types/python`: the options header, then the module."""
    c = meta.config
    options = [
        ("GlobalNamespace", ""),
        ("AddServiceStackTypes", flag(c.add_service_stack_types)),
        ("AddResponseStatus", flag(c.add_response_status)),
        ("AddImplicitVersion", ""),
        ("AddDescriptionAsComments", flag(c.add_description_as_comments)),
        ("IncludeTypes", ""),
        ("ExcludeTypes", ""),
        ("DefaultImports", ",".join(DEFAULT_IMPORTS)),
        ("DataClass", ""),
        ("DataClassJson", ""),
    ]
    return options_block('"""', '"""', "#", "#", now, c.base_url, options) + module(meta)
