"""`/types/csharp` has the models' shape: every class in its namespace with its
base class and properties (names and C# types), every enum with its members,
and both request DTOs. Parsed from the served text; the expectation is worked
out from the msgspec models here, independently of the generator."""

from __future__ import annotations

import enum
import re

import httpx
import msgspec

from app.apidocs.catalog import BASES, NAMESPACES, OPERATIONS
from app.domain.dtos import GetActiveSessionsResponse, pascal
from tests.support.processes import ServiceProcess

CLASS = re.compile(r"^    public partial class (\w+)\n(?:        : (\w+)\n)?    \{\n(.*?)^    \}\n", re.S | re.M)
ENUM = re.compile(r"^    public enum (\w+)\n    \{\n(.*?)^    \}\n", re.S | re.M)
PROPERTY = re.compile(r"^        public virtual (.+?) (\w+) \{ get; set; \}$", re.M)
NAMESPACE = re.compile(r"^namespace ([\w.]+)\n\{\n(.*?)^\}\n", re.S | re.M)


def csharp_type(info: msgspec.inspect.Type) -> str:
    if isinstance(info, msgspec.inspect.UnionType):
        [inner] = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        name = csharp_type(inner)
        value = isinstance(inner, (msgspec.inspect.BoolType, msgspec.inspect.EnumType))
        return name + "?" if value else name
    if isinstance(info, msgspec.inspect.ListType):
        return f"List<{csharp_type(info.item_type)}>"
    if isinstance(info, msgspec.inspect.DictType):
        return f"Dictionary<{csharp_type(info.key_type)}, {csharp_type(info.value_type)}>"
    if isinstance(info, (msgspec.inspect.StructType, msgspec.inspect.EnumType)):
        return info.cls.__name__
    return {msgspec.inspect.StrType: "string", msgspec.inspect.BoolType: "bool"}[type(info)]


def model_types() -> set[type]:
    found: set[type] = set()

    def visit(info: msgspec.inspect.Type) -> None:
        if isinstance(info, msgspec.inspect.StructType) and info.cls not in found:
            found.add(info.cls)
            for f in info.fields:
                visit(f.type)
        elif isinstance(info, msgspec.inspect.EnumType):
            found.add(info.cls)
        for child in ("types", "item_type", "key_type", "value_type"):
            sub = getattr(info, child, None)
            for s in sub if isinstance(sub, tuple) else [sub] if sub is not None else []:
                visit(s)

    visit(msgspec.inspect.type_info(GetActiveSessionsResponse))
    return found | {BASES[cls] for cls in found if cls in BASES}  # C# base classes


def parse(text: str) -> dict[str, tuple[str, str | None, object]]:
    """name -> (namespace, base, [(type, property)] for a class | [member] for an enum)."""
    declared: dict[str, tuple[str, str | None, object]] = {}
    for ns, body in NAMESPACE.findall(text):
        for name, base, members in CLASS.findall(body):
            declared[name] = (ns, base or None, PROPERTY.findall(members))
        for name, members in ENUM.findall(body):
            declared[name] = (ns, None, re.findall(r"^        (\w+),$", members, re.M))
    return declared


def test_types_csharp_has_the_models_shape(service: ServiceProcess) -> None:
    r = httpx.get(service.url + "/types/csharp")
    assert r.status_code == 200 and r.text.startswith("/* Options:\n")
    declared = parse(r.text)
    expected: dict[str, tuple[str, str | None, object]] = {}
    for cls in model_types():
        if issubclass(cls, enum.Enum):
            expected[cls.__name__] = (NAMESPACES[cls], None, [m.value for m in cls])
            continue
        base = BASES.get(cls)
        inherited = set(base.__struct_fields__) if base else set()
        props = [(csharp_type(f.type), pascal(f.name))
                 for f in msgspec.inspect.type_info(cls).fields if f.name not in inherited]  # type: ignore[attr-defined]
        expected[cls.__name__] = (NAMESPACES[cls], base.__name__ if base else None, props)
    for op in OPERATIONS:
        expected[op.name] = (op.namespace, None, [])
        assert f'    [Api(Description="{op.description}")]\n    public partial class {op.name}\n' in r.text
    assert declared == expected


def test_the_parser_sees_a_missing_property() -> None:
    """The shape comparison can fail: drop one property line and the parse differs."""
    text = ("namespace N\n{\n    public partial class A\n    {\n"
            "        public virtual string X { get; set; }\n    }\n\n}\n")
    assert parse(text) == {"A": ("N", None, [("string", "X")])}
    assert parse(text.replace("        public virtual string X { get; set; }\n", "")) == {"A": ("N", None, [])}
