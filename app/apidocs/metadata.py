"""ServiceStack's MetadataTypes (what `/types/metadata` serves and every native-types
generator reads), built from the msgspec models and the catalog.

The shape follows ServiceStack's `MetadataTypes`: `config`, `namespaces`,
`types` (the nested DTOs and enums) and `operations` (request and response
types, routes, auth). Property types use the CLR names the generators expect
(`String`, `Nullable`1<Boolean>`, `List`1<SessionInfo>`, `Dictionary`2<String,String>`).

Pure: no Starlette, no Redis.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Final

import msgspec

from app.apidocs.catalog import BASES, DESCRIPTIONS, NAMESPACES, OPERATIONS, Operation
from app.domain.dtos import pascal


class Meta(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Base of the metadata wire types: camelCase, unset members omitted."""


class MetadataTypeName(Meta):
    name: str
    namespace: str | None = None
    generic_args: list[str] | None = None


class MetadataAttributeArg(Meta):
    name: str
    type: str
    value: str


class MetadataAttribute(Meta):
    name: str
    args: list[MetadataAttributeArg] | None = None


class MetadataPropertyType(Meta):
    name: str
    type: str
    namespace: str | None = None
    generic_args: list[str] | None = None
    is_value_type: bool | None = None
    is_enum: bool | None = None
    description: str | None = None
    attributes: list[MetadataAttribute] | None = None


class MetadataType(Meta):
    name: str
    namespace: str
    inherits: MetadataTypeName | None = None
    description: str | None = None
    attributes: list[MetadataAttribute] | None = None
    properties: list[MetadataPropertyType] | None = None
    is_enum: bool | None = None
    enum_names: list[str] | None = None


class MetadataRoute(Meta):
    path: str
    verbs: str


class MetadataOperationType(Meta):
    request: MetadataType
    response: MetadataType | None = None
    actions: list[str] = []
    routes: list[MetadataRoute] = []
    requires_auth: bool = False
    required_roles: list[str] = []


class MetadataTypesConfig(msgspec.Struct, rename="camel", kw_only=True):
    """The generator options in force, every one written out (as ServiceStack does)."""

    base_url: str
    add_return_marker: bool = False
    make_properties_optional: bool = True
    add_description_as_comments: bool = True
    add_service_stack_types: bool = True
    add_response_status: bool = False
    initialize_collections: bool = False


class MetadataTypes(Meta):
    config: MetadataTypesConfig
    namespaces: list[str]
    types: list[MetadataType]
    operations: list[MetadataOperationType]


SCALARS: Final[dict[type, str]] = {str: "String", bool: "Boolean", int: "Int32", float: "Double"}


def _api_attribute(name: str, description: str) -> MetadataAttribute:
    return MetadataAttribute(name=name, args=[MetadataAttributeArg(name="Description", type="String", value=description)])


def _clr(tp: object) -> tuple[str, list[str] | None]:
    """A msgspec field annotation as (CLR type name, generic args)."""
    info = msgspec.inspect.type_info(tp)
    return _clr_of(info)


def _clr_of(info: msgspec.inspect.Type) -> tuple[str, list[str] | None]:
    if isinstance(info, msgspec.inspect.UnionType):
        inner = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        assert len(inner) == 1, f"only X | None unions are published: {info}"
        name, args = _clr_of(inner[0])
        value_type = isinstance(inner[0], (msgspec.inspect.BoolType, msgspec.inspect.IntType,
                                           msgspec.inspect.FloatType, msgspec.inspect.EnumType))
        return ("Nullable`1", [_generic(name, args)]) if value_type else (name, args)
    if isinstance(info, msgspec.inspect.ListType):
        return "List`1", [_generic(*_clr_of(info.item_type))]
    if isinstance(info, msgspec.inspect.DictType):
        return "Dictionary`2", [_generic(*_clr_of(info.key_type)), _generic(*_clr_of(info.value_type))]
    if isinstance(info, (msgspec.inspect.StructType, msgspec.inspect.EnumType)):
        return info.cls.__name__, None
    for kind, name in ((msgspec.inspect.StrType, "String"), (msgspec.inspect.BoolType, "Boolean"),
                       (msgspec.inspect.IntType, "Int32"), (msgspec.inspect.FloatType, "Double")):
        if isinstance(info, kind):
            return name, None
    raise TypeError(f"no CLR name for {info}")


def _generic(name: str, args: list[str] | None) -> str:
    return name if not args else f"{name.split('`')[0]}<{','.join(args)}>"


def _referenced(info: msgspec.inspect.Type) -> Iterator[type]:
    """The Structs and Enums a field's type names, in order."""
    if isinstance(info, msgspec.inspect.UnionType):
        for t in info.types:
            yield from _referenced(t)
    elif isinstance(info, msgspec.inspect.ListType):
        yield from _referenced(info.item_type)
    elif isinstance(info, msgspec.inspect.DictType):
        yield from _referenced(info.key_type)
        yield from _referenced(info.value_type)
    elif isinstance(info, (msgspec.inspect.StructType, msgspec.inspect.EnumType)):
        yield info.cls


def _own_fields(cls: type[msgspec.Struct]) -> list[msgspec.structs.FieldInfo]:
    """The members the C# class itself declares (not its base class's)."""
    base = BASES.get(cls)
    inherited = set(base.__struct_fields__) if base else set()
    return [f for f in msgspec.structs.fields(cls) if f.name not in inherited]


def _property(cls: type[msgspec.Struct], field: msgspec.structs.FieldInfo) -> MetadataPropertyType:
    name, args = _clr(field.type)
    description = DESCRIPTIONS.get(cls, {}).get(field.name)
    refs = list(_referenced(msgspec.inspect.type_info(field.type)))
    collection = name in ("List`1", "Dictionary`2")
    if collection:
        namespace = "System.Collections.Generic"
    else:
        namespace = NAMESPACES[refs[0]] if refs else "System"
    is_enum = not collection and bool(refs) and issubclass(refs[0], enum.Enum)
    return MetadataPropertyType(
        name=pascal(field.name),
        type=name,
        namespace=namespace,
        generic_args=args,
        is_value_type=True if name == "Nullable`1" else None,
        is_enum=True if is_enum else None,
        description=description,
        attributes=[_api_attribute("ApiMember", description)] if description else None,
    )


def metadata_type(cls: type) -> MetadataType:
    """One model (Struct or str Enum) as a MetadataType."""
    if issubclass(cls, enum.Enum):
        return MetadataType(name=cls.__name__, namespace=NAMESPACES[cls], is_enum=True,
                            enum_names=[str(m.value) for m in cls])
    assert issubclass(cls, msgspec.Struct)
    base = BASES.get(cls)
    return MetadataType(
        name=cls.__name__,
        namespace=NAMESPACES[cls],
        inherits=MetadataTypeName(name=base.__name__, namespace=NAMESPACES[base]) if base else None,
        properties=[_property(cls, f) for f in _own_fields(cls)],
    )


def dependency_order(roots: list[type]) -> list[type]:
    """Every type the roots need, each after what it depends on (base class, then
    each property's types, in declaration order), as ServiceStack orders them."""
    seen: set[type] = set()
    ordered: list[type] = []

    def visit(cls: type) -> None:
        if cls in seen:
            return
        seen.add(cls)
        if isinstance(cls, type) and issubclass(cls, msgspec.Struct):
            base = BASES.get(cls)
            if base is not None:
                visit(base)
            for f in _own_fields(cls):
                for ref in _referenced(msgspec.inspect.type_info(f.type)):
                    visit(ref)
        ordered.append(cls)

    for root in roots:
        visit(root)
    return ordered


def _request_type(op: Operation) -> MetadataType:
    return MetadataType(name=op.name, namespace=op.namespace, description=op.description,
                        attributes=[_api_attribute("Api", op.description)], properties=[])


def _operation(op: Operation) -> MetadataOperationType:
    return MetadataOperationType(
        request=_request_type(op),
        response=metadata_type(op.response),
        actions=sorted({verb for r in op.routes for verb in r.verbs.split(",")}),
        routes=[MetadataRoute(path=r.path, verbs=r.verbs) for r in op.routes],
        requires_auth=True,
        required_roles=[op.required_role],
    )


def build(base_url: str, operations: tuple[Operation, ...] = OPERATIONS) -> MetadataTypes:
    """The MetadataTypes of `operations` (all we serve by default)."""
    responses = {op.response for op in operations}
    nested = [t for t in dependency_order([op.response for op in operations]) if t not in responses]
    types = [metadata_type(t) for t in nested]
    ops = [_operation(op) for op in operations]
    namespaces = sorted({t.namespace for t in types} | {o.request.namespace for o in ops})
    return MetadataTypes(config=MetadataTypesConfig(base_url=base_url), namespaces=namespaces, types=types,
                         operations=ops)


def ordered_types(meta: MetadataTypes) -> list[tuple[MetadataType, str]]:
    """Every type to emit, with its role (`type`, `response` or `request`), in
    dependency order: per operation its response (after the types it uses), then
    its request."""
    by_name = {t.name: t for t in meta.types}
    for op in meta.operations:
        if op.response is not None:
            by_name.setdefault(op.response.name, op.response)
    out: list[tuple[MetadataType, str]] = []
    seen: set[str] = set()
    responses = {op.response.name for op in meta.operations if op.response is not None}

    def visit(t: MetadataType, role: str) -> None:
        if t.name in seen:
            return
        seen.add(t.name)
        if t.inherits is not None and t.inherits.name in by_name:
            visit(by_name[t.inherits.name], "type")
        for p in t.properties or []:
            for name in [p.type, *_names(p.generic_args)]:
                if name in by_name:
                    visit(by_name[name], "response" if name in responses else "type")
        out.append((t, role))

    for op in meta.operations:
        if op.response is not None:
            visit(op.response, "response")
        visit(op.request, "request")
    for t in meta.types:
        visit(t, "type")
    return out


def _names(generic_args: list[str] | None) -> list[str]:
    return [part for arg in generic_args or [] for part in arg.replace("<", ",").replace(">", "").split(",")]


def operation_of(meta: MetadataTypes, request: MetadataType) -> MetadataOperationType | None:
    return next((op for op in meta.operations if op.request.name == request.name), None)
