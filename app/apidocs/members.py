"""What the C#, TypeScript and Python generators write the same way (pure):
string literals, an attribute's arguments, and the C#/TypeScript layout of a
property list (comment, attributes, declaration; a blank line after a property
that carried attributes)."""

from __future__ import annotations

from collections.abc import Callable

from app.apidocs.metadata import MetadataAttribute, MetadataPropertyType


def quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def attribute_text(attr: MetadataAttribute) -> str:
    """`Name(Arg="value", ...)`, as every language's generator shows an attribute."""
    return f"{attr.name}({', '.join(f'{x.name}={quoted(x.value)}' for x in attr.args or [])})"


def stacked_properties(props: list[MetadataPropertyType], comment: Callable[[str | None], list[str]],
                       attributes: Callable[[list[MetadataAttribute] | None], list[str]],
                       declare: Callable[[MetadataPropertyType], str]) -> list[str]:
    lines: list[str] = []
    spaced = False
    for p in props:
        if spaced:
            lines.append("")
        lines += comment(p.description)
        attrs = attributes(p.attributes)
        spaced = bool(attrs)
        lines += attrs
        lines.append(declare(p))
    return lines
