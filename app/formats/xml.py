"""ServiceStack's XML: what .NET's DataContractSerializer writes, byte for byte.

ServiceStack serialises with `DataContractSerializer.WriteObject(XmlWriter)`
(UTF-8, no BOM, declaration on, no indentation). The bytes follow from four
pieces of .NET behaviour, reproduced here once per type at import time:

- Members: base class first, then derived; within a class ordinal by name for
  POCOs, declaration (`DataMember.Order`) order for `[DataContract]` types.
  Every member is written; null is `i:nil="true"`.
- A member element is in its declaring class's namespace. `XmlWellFormedWriter`
  reuses an in-scope prefix for it, else redeclares the default namespace;
  that implicit `xmlns="..."` is emitted only when the start tag closes, so it
  comes after every other attribute (`<CreatedBy i:nil="true" xmlns="...">`).
- A member whose type lives in another namespace than its declaring class
  (a list of `CustomerBreadcrumb`, a dictionary) declares that namespace
  explicitly as `xmlns:d{depth}p1` unless it is already in scope; depth
  counts elements from the root (= 1). Items and their members then take the
  prefix. (`XmlWriterDelegator.WriteXmlnsAttribute`, `ReflectionXmlFormatWriter`.)
- Empty elements are `<X />`, text escapes `&`, `<`, `>`.

Pure: no Starlette, no Redis.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from app.domain.dtos import (
    ENTITY_FIELDS,
    CustomerBreadcrumb,
    ErrorResponse,
    GetActiveSessionsResponse,
    ResponseError,
    ResponseStatus,
    SessionInfo,
    SessionLogInfo,
    SessionMemberInfo,
    pascal,
)

MEDIA_TYPE: Final = "application/xml"

XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"
NS_API: Final = "http://schemas.datacontract.org/2004/07/Voice.Api"
NS_SESSIONS: Final = "http://schemas.datacontract.org/2004/07/Voice.Api.Sessions"
NS_CUSTOMERS: Final = "http://schemas.datacontract.org/2004/07/Voice.Api.Customers"
NS_ARRAYS: Final = "http://schemas.microsoft.com/2003/10/Serialization/Arrays"
NS_SERVICESTACK: Final = "http://schemas.servicestack.net/types"

_DECLARATION: Final = '<?xml version="1.0" encoding="utf-8"?>'


@dataclass(frozen=True)
class _Contract:
    """What the C# side knows and the Structs do not: the CLR namespace, how
    members are ordered, and which members a base class in another namespace
    declares."""

    ns: str
    ordered: bool = False  # [DataContract] + DataMember(Order): keep declaration order
    base_ns: str = ""
    base_fields: tuple[str, ...] = ()


# Namespaces as on the seed page and in ServiceStack's own [DataContract]s.
_CONTRACTS: Final[dict[type[msgspec.Struct], _Contract]] = {
    GetActiveSessionsResponse: _Contract(NS_SESSIONS),
    SessionInfo: _Contract(NS_SESSIONS, base_ns=NS_API, base_fields=ENTITY_FIELDS),
    CustomerBreadcrumb: _Contract(NS_CUSTOMERS),
    SessionLogInfo: _Contract(NS_SESSIONS),
    SessionMemberInfo: _Contract(NS_SESSIONS),
    ErrorResponse: _Contract(NS_SERVICESTACK, ordered=True),
    ResponseStatus: _Contract(NS_SERVICESTACK, ordered=True),
    ResponseError: _Contract(NS_SERVICESTACK, ordered=True),
}

# --- text ---------------------------------------------------------------------

# `&<>` as XmlWriter escapes them; CR as a character reference so it survives
# parsing (a parser would fold a raw CR into LF); characters XML 1.0 cannot
# carry (where .NET would throw) become U+FFFD so the document stays well formed.
_SPECIAL: Final = re.compile(
    "[&<>\r]|[^\t\n\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_ENTITIES: Final = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#xD;"}


def escape(text: str) -> str:
    """Element text as XmlWriter writes it (quotes stay as they are)."""
    if _SPECIAL.search(text) is None:
        return text
    return _SPECIAL.sub(_entity, text)


def _entity(match: re.Match[str]) -> str:
    return _ENTITIES.get(match.group(), "\ufffd")


# --- namespace scope, simulated at import time ---------------------------------


@dataclass(frozen=True)
class _Scope:
    """Namespace bindings in force (innermost last) and the element depth, as
    XmlWellFormedWriter and XmlWriterDelegator track them."""

    bindings: tuple[tuple[str, str], ...]
    depth: int

    def prefix_for(self, uri: str) -> str | None:
        """XmlWriter.LookupPrefix: the innermost binding of `uri` whose prefix
        is not rebound further in."""
        for i in range(len(self.bindings) - 1, -1, -1):
            prefix, bound = self.bindings[i]
            if bound == uri:
                rebound = any(p == prefix for p, _ in self.bindings[i + 1 :])
                return None if rebound else prefix
        return None

    def uri_for(self, prefix: str) -> str | None:
        for bound_prefix, uri in reversed(self.bindings):
            if bound_prefix == prefix:
                return uri
        return None


_DOCUMENT: Final = _Scope(bindings=(("", ""),), depth=0)


@dataclass(frozen=True)
class _Tag:
    """One element's precomputed markup at one place in the document."""

    start: str  # "<qname" plus explicit xmlns:* declarations
    implicit: str  # the default-namespace redeclaration written as the tag closes
    close: str
    inner: _Scope  # what its children see

    @property
    def open(self) -> str:
        return f"{self.start}{self.implicit}>"

    @property
    def nil(self) -> str:
        return f'{self.start} i:nil="true"{self.implicit} />'

    @property
    def empty(self) -> str:
        return f"{self.start}{self.implicit} />"


def _tag(
    scope: _Scope, local: str, uri: str, declare: str = "", prefix: str = ""
) -> _Tag:
    """WriteStartElement(null, local, uri), then WriteXmlnsAttribute(declare)
    when the element's type lives in another namespace."""
    own = scope.prefix_for(uri) or ""
    bindings, implicit = scope.bindings, ""
    if scope.uri_for(own) != uri:  # only the default namespace can be missing here
        bindings, implicit = (*bindings, (own, uri)), f' xmlns="{uri}"'
    qname = f"{own}:{local}" if own else local
    inner = _Scope(bindings, scope.depth + 1)
    start = f"<{qname}"
    if declare and (prefix or inner.prefix_for(declare) is None):
        prefix = prefix or f"d{inner.depth}p1"
        start += f' xmlns:{prefix}="{declare}"'
        inner = _Scope((*inner.bindings, (prefix, declare)), inner.depth)
    return _Tag(start, implicit, f"</{qname}>", inner)


# --- compiled writers ------------------------------------------------------------

_Out = list[str]
_Write = Callable[[_Out, Any], None]
_Member = tuple[str, str, _Write]  # (attribute, markup when None, writer otherwise)


def _members(cls: type[msgspec.Struct]) -> list[tuple[str, msgspec.inspect.Field]]:
    """(declaring namespace, field) in DataContractSerializer's member order."""
    contract = _CONTRACTS[cls]
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    fields = info.fields
    base = [f for f in fields if f.name in contract.base_fields]
    own = [f for f in fields if f.name not in contract.base_fields]
    if not contract.ordered:
        base.sort(key=lambda f: pascal(f.name))
        own.sort(key=lambda f: pascal(f.name))
    return [(contract.base_ns, f) for f in base] + [(contract.ns, f) for f in own]


def _compile_class(cls: type[msgspec.Struct], scope: _Scope) -> _Write:
    """Writes the members of `cls` inside an element whose children see `scope`."""
    members = [_compile_member(scope, uri, field) for uri, field in _members(cls)]

    def write(out: _Out, obj: Any) -> None:
        for attr, nil, write_value in members:
            value = getattr(obj, attr)
            if value is None:
                out.append(nil)
            else:
                write_value(out, value)

    return write


def _compile_member(scope: _Scope, uri: str, field: msgspec.inspect.Field) -> _Member:
    kind = _non_null(field.type)
    name = pascal(field.name)
    if isinstance(kind, msgspec.inspect.StrType):
        tag = _tag(scope, name, uri)
        return field.name, tag.nil, _text_writer(tag)
    if isinstance(kind, msgspec.inspect.BoolType):
        tag = _tag(scope, name, uri)
        return field.name, tag.nil, _bool_writer(tag)
    if isinstance(kind, msgspec.inspect.EnumType):
        tag = _tag(scope, name, uri)
        return field.name, tag.nil, _enum_writer(tag, kind.cls)
    if isinstance(kind, msgspec.inspect.ListType):
        return _compile_list(scope, uri, field.name, name, kind.item_type)
    if isinstance(kind, msgspec.inspect.DictType):
        tag = _tag(scope, name, uri, declare=_other_ns(NS_ARRAYS, uri))
        return field.name, tag.nil, _dict_writer(tag, kind)
    if isinstance(kind, msgspec.inspect.StructType):
        type_ns = _CONTRACTS[kind.cls].ns
        tag = _tag(scope, name, uri, declare=_other_ns(type_ns, uri))
        return (
            field.name,
            tag.nil,
            _struct_writer(tag, _compile_class(kind.cls, tag.inner)),
        )
    raise TypeError(f"no XML mapping for {field.name}: {kind}")


def _compile_list(
    scope: _Scope, uri: str, attr: str, name: str, item: msgspec.inspect.Type
) -> _Member:
    """List<T>: items named after T, in the collection's namespace, which is
    T's own namespace for a class and the Arrays namespace for string."""
    if isinstance(item, msgspec.inspect.StructType):
        item_ns = _CONTRACTS[item.cls].ns
        tag = _tag(scope, name, uri, declare=_other_ns(item_ns, uri))
        item_tag = _tag(tag.inner, item.cls.__name__, item_ns)
        write_item = _struct_writer(item_tag, _compile_class(item.cls, item_tag.inner))
    elif isinstance(item, msgspec.inspect.StrType):
        tag = _tag(scope, name, uri, declare=_other_ns(NS_ARRAYS, uri))
        write_item = _text_writer(_tag(tag.inner, "string", NS_ARRAYS))
    else:
        raise TypeError(f"no XML mapping for list {attr}: {item}")
    return attr, tag.nil, _list_writer(tag, write_item)


def _non_null(kind: msgspec.inspect.Type) -> msgspec.inspect.Type:
    if isinstance(kind, msgspec.inspect.UnionType):
        (only,) = (t for t in kind.types if not isinstance(t, msgspec.inspect.NoneType))
        return only
    return kind


def _other_ns(type_ns: str, declaring_ns: str) -> str:
    """ClassDataContract.GetChildNamespaceToDeclare: only a foreign namespace."""
    return "" if type_ns == declaring_ns else type_ns


def _text_writer(tag: _Tag) -> _Write:
    opening, closing = tag.open, tag.close

    def write(out: _Out, value: Any) -> None:
        out += (opening, escape(value), closing)

    return write


def _bool_writer(tag: _Tag) -> _Write:
    true, false = f"{tag.open}true{tag.close}", f"{tag.open}false{tag.close}"

    def write(out: _Out, value: Any) -> None:
        out.append(true if value else false)

    return write


def _enum_writer(tag: _Tag, enum_cls: type[enum.Enum]) -> _Write:
    # str-enum members hash like their values, so a plain "Connected" finds it too.
    markup = {
        member: f"{tag.open}{escape(member.value)}{tag.close}" for member in enum_cls
    }

    def write(out: _Out, value: Any) -> None:
        out.append(markup[value])

    return write


def _struct_writer(tag: _Tag, write_members: _Write) -> _Write:
    opening, closing = tag.open, tag.close

    def write(out: _Out, value: Any) -> None:
        out.append(opening)
        write_members(out, value)
        out.append(closing)

    return write


def _list_writer(tag: _Tag, write_item: _Write) -> _Write:
    opening, closing, empty = tag.open, tag.close, tag.empty

    def write(out: _Out, value: Any) -> None:
        if not value:
            out.append(empty)
            return
        out.append(opening)
        for item in value:
            write_item(out, item)
        out.append(closing)

    return write


def _dict_writer(tag: _Tag, kind: msgspec.inspect.DictType) -> _Write:
    """Dictionary<string,string> as DCS writes it: KeyValueOfstringstring pairs
    in the Arrays namespace."""
    if not (
        isinstance(kind.key_type, msgspec.inspect.StrType)
        and isinstance(kind.value_type, msgspec.inspect.StrType)
    ):
        raise TypeError(f"no XML mapping for dictionary {kind}")
    pair = _tag(tag.inner, "KeyValueOfstringstring", NS_ARRAYS)
    key = _tag(pair.inner, "Key", NS_ARRAYS)
    val = _tag(pair.inner, "Value", NS_ARRAYS)
    opening, closing, empty = tag.open, tag.close, tag.empty
    key_open = pair.open + key.open
    key_close_val_open = key.close + val.open
    val_close = val.close + pair.close
    val_nil = key.close + val.nil + pair.close

    def write(out: _Out, value: Any) -> None:
        if not value:
            out.append(empty)
            return
        out.append(opening)
        for k, v in value.items():
            out += (key_open, escape(k))
            if v is None:
                out.append(val_nil)
            else:
                out += (key_close_val_open, escape(v), val_close)
        out.append(closing)

    return write


# --- documents ---------------------------------------------------------------------


def _compile_document(cls: type[msgspec.Struct]) -> Callable[[Any], bytes]:
    """Root element named after the type, declaring `i` and its namespace."""
    root = _tag(_DOCUMENT, cls.__name__, _CONTRACTS[cls].ns, declare=XSI, prefix="i")
    head, tail = _DECLARATION + root.open, root.close
    write_members = _compile_class(cls, root.inner)

    def encode(dto: Any) -> bytes:
        out: _Out = [head]
        write_members(out, dto)
        out.append(tail)
        return "".join(out).encode("utf-8")

    return encode


_DOCUMENTS: Final[dict[type[msgspec.Struct], Callable[[Any], bytes]]] = {
    cls: _compile_document(cls) for cls in (GetActiveSessionsResponse, ErrorResponse)
}


def encode(dto: GetActiveSessionsResponse | ErrorResponse) -> bytes:
    """The DTO as ServiceStack's XML format writes it."""
    return _DOCUMENTS[type(dto)](dto)
