"""`/types/csharp`: MetadataTypes as C# DTOs, in the layout ServiceStack's C#
generator writes: one `namespace` block per CLR namespace, types by name.

Pure: no Starlette, no Redis.
"""

from __future__ import annotations

from typing import Final

from app.apidocs.header import flag, options_block
from app.apidocs.members import attribute_text, stacked_properties
from app.apidocs.metadata import MetadataAttribute, MetadataPropertyType, MetadataType, MetadataTypes, ordered_types

ALIASES: Final = {"String": "string", "Boolean": "bool", "Int32": "int", "Double": "double"}
USINGS: Final = (
    "System", "System.IO", "System.Collections", "System.Collections.Generic",
    "System.Runtime.Serialization", "ServiceStack", "ServiceStack.DataAnnotations",
)
INDENT: Final = "    "


def _type(name: str, args: list[str] | None) -> str:
    if name == "Nullable`1" and args:
        return f"{_type(args[0], None)}?"
    if args:
        return f"{name.split('`')[0]}<{', '.join(_type(a, None) for a in args)}>"
    return ALIASES.get(name, name)


def _comment(text: str | None) -> list[str]:
    return ["///<summary>", f"///{text}", "///</summary>"] if text else []


def _attributes(attrs: list[MetadataAttribute] | None) -> list[str]:
    return [f"[{attribute_text(a)}]" for a in attrs or []]



def _enum(t: MetadataType) -> list[str]:
    return [f"public enum {t.name}", "{", *(f"{INDENT}{n}," for n in t.enum_names or []), "}"]


def _properties(props: list[MetadataPropertyType]) -> list[str]:
    return stacked_properties(props, _comment, _attributes,
                              lambda p: f"public virtual {_type(p.type, p.generic_args)} {p.name} {{ get; set; }}")


def _class(t: MetadataType) -> list[str]:
    head = [f"public partial class {t.name}"]
    if t.inherits is not None:
        head.append(f"{INDENT}: {t.inherits.name}")
    body = _properties(t.properties or [])
    return [*head, "{", *(INDENT + line if line else "" for line in body), "}"]


def module(meta: MetadataTypes) -> str:
    types = sorted((t for t, _ in ordered_types(meta)), key=lambda t: (t.namespace, t.name))
    lines = [*(f"using {u};" for u in (*USINGS, *meta.namespaces)), ""]
    namespace: str | None = None
    for t in types:
        if t.namespace != namespace:
            if namespace is not None:
                lines += ["}", ""]
            namespace = t.namespace
            lines += [f"namespace {namespace}", "{"]
        block = [*_comment(t.description), *_attributes(t.attributes), *(_enum(t) if t.is_enum else _class(t))]
        lines += [INDENT + line if line else "" for line in block]
        lines.append("")
    if namespace is not None:
        lines.append("}")
    return "\n".join(lines) + "\n\n"


def render(meta: MetadataTypes, now: str) -> str:
    c = meta.config
    options = [
        ("GlobalNamespace", ""),
        ("MakePartial", "True"),
        ("MakeVirtual", "True"),
        ("MakeInternal", "False"),
        ("MakeDataContractsExtensible", "False"),
        ("AddNullableAnnotations", "False"),
        ("AddReturnMarker", flag(c.add_return_marker)),
        ("AddDescriptionAsComments", flag(c.add_description_as_comments)),
        ("AddDataContractAttributes", "False"),
        ("AddIndexesToDataMembers", "False"),
        ("AddGeneratedCodeAttributes", "False"),
        ("AddResponseStatus", flag(c.add_response_status)),
        ("AddImplicitVersion", ""),
        ("InitializeCollections", flag(c.initialize_collections)),
        ("ExportValueTypes", "False"),
        ("IncludeTypes", ""),
        ("ExcludeTypes", ""),
        ("AddNamespaces", ""),
        ("AddDefaultXmlNamespace", "http://schemas.servicestack.net/types"),
    ]
    return options_block("/*", "*/", "//", "//", now, c.base_url, options) + module(meta)
