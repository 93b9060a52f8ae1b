"""`/types/typescript`: MetadataTypes as TypeScript classes and enums, in the layout
ServiceStack's TypeScript generator writes (for `@servicestack/client`).

Pure: no Starlette, no Redis.
"""

from __future__ import annotations

from typing import Final

from app.apidocs.header import flag, options_block
from app.apidocs.members import attribute_text, stacked_properties
from app.apidocs.metadata import MetadataAttribute, MetadataPropertyType, MetadataType, MetadataTypes, ordered_types

ALIASES: Final = {"String": "string", "Boolean": "boolean", "Int32": "number", "Double": "number"}
INDENT: Final = "    "


def _type(name: str, args: list[str] | None) -> str:
    if name == "Nullable`1" and args:
        return _type(args[0], None)
    if name == "List`1" and args:
        return f"{_type(args[0], None)}[]"
    if name == "Dictionary`2" and args:
        key = _type(args[0], None)
        return "{ [index:" + (key if key in ("string", "number", "boolean") else "string") + "]: " \
            + _type(args[1], None) + "; }"
    return ALIASES.get(name, name)


def _comment(text: str | None) -> list[str]:
    return [f"/** @description {text.replace('*/', '* /')} */"] if text else []


def _attributes(attrs: list[MetadataAttribute] | None) -> list[str]:
    return [f"// @{attribute_text(a)}" for a in attrs or []]



def _enum(t: MetadataType) -> list[str]:
    return [f"export enum {t.name}", "{", *(f"{INDENT}{n} = '{n}'," for n in t.enum_names or []), "}"]


def _properties(props: list[MetadataPropertyType]) -> list[str]:
    # MakePropertiesOptional: every member is optional (`?`), as JSON omits nulls.
    return stacked_properties(props, _comment, _attributes,
                              lambda p: f"public {camel_name(p.name)}?: {_type(p.type, p.generic_args)};")


def camel_name(pascal_name: str) -> str:
    """`CallSid` -> `callSid` (the JSON wire name)."""
    return pascal_name[:1].lower() + pascal_name[1:]


def _class(t: MetadataType, role: str) -> list[str]:
    extends = f" extends {t.inherits.name}" if t.inherits else ""
    body = _properties(t.properties or [])
    body.append("")
    call_super = "super(init); " if t.inherits else ""
    body.append(f"public constructor(init?: Partial<{t.name}>) {{ {call_super}(Object as any).assign(this, init); }}")
    if role == "request":
        body.append(f"public getTypeName() {{ return '{t.name}'; }}")
        body.append("public createResponse() {}")
    return [f"export class {t.name}{extends}", "{", *(INDENT + line if line else "" for line in body), "}"]


def module(meta: MetadataTypes) -> str:
    lines: list[str] = []
    for t, role in ordered_types(meta):
        lines += ["", *_comment(t.description), *_attributes(t.attributes)]
        lines += _enum(t) if t.is_enum else _class(t, role)
    return "\n".join(lines) + "\n\n"


def render(meta: MetadataTypes, now: str) -> str:
    c = meta.config
    options = [
        ("GlobalNamespace", ""),
        ("MakePropertiesOptional", flag(c.make_properties_optional)),
        ("AddServiceStackTypes", flag(c.add_service_stack_types)),
        ("AddResponseStatus", flag(c.add_response_status)),
        ("AddImplicitVersion", ""),
        ("AddDescriptionAsComments", flag(c.add_description_as_comments)),
        ("IncludeTypes", ""),
        ("ExcludeTypes", ""),
        ("DefaultImports", ""),
    ]
    return options_block("/*", "*/", "//", "//", now, c.base_url, options) + module(meta)



