"""ServiceStack's JSV: JSON's shape without JSON's quotes.

`{sessions:[{dialState:Active,ended:False,id:S1}]}`: keys bare (camelCase,
as the Structs rename them), nulls omitted, booleans as .NET prints them
(`True`/`False`). A string is quoted CSV-style, with `"` doubled, only when it
holds one of `"` `:` `,` `{` `}` `[` `]` CR LF (ServiceStack.Text
`JsWriter.EscapeChars`; the colon is there too, so ISO dates get quoted);
the empty string is `""` so it is not read back as null.
(ServiceStack.Text `JsvTypeSerializer.WriteString`, `StringExtensions.EncodeJsv`.)

Pure: no Starlette, no Redis.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

import msgspec

MEDIA_TYPE: Final = "text/jsv"

_NEEDS_QUOTES: Final = re.compile(r'[":,{}\[\]\r\n]')


def encode(dto: msgspec.Struct) -> bytes:
    """The DTO as ServiceStack's JSV format writes it."""
    return dumps(msgspec.to_builtins(dto)).encode("utf-8")


def dumps(value: Any) -> str:
    """JSV text of a builtin value as `msgspec.to_builtins` produces it."""
    return _WRITERS[type(value)](value)


def quote(text: str) -> str:
    """A string value or dictionary key, quoted only when JSV needs it."""
    if not text:
        return '""'
    if _NEEDS_QUOTES.search(text) is None:
        return text
    return '"' + text.replace('"', '""') + '"'


def _dumps_dict(value: dict[str, Any]) -> str:
    # Null dictionary values are dropped too (IncludeNullValuesInDictionaries=false).
    items = [f"{quote(k)}:{dumps(v)}" for k, v in value.items() if v is not None]
    return "{" + ",".join(items) + "}"


def _dumps_list(value: list[Any]) -> str:
    return "[" + ",".join([dumps(item) for item in value]) + "]"


_WRITERS: Final[dict[type, Callable[[Any], str]]] = {
    str: quote,
    bool: lambda value: "True" if value else "False",
    int: str,
    float: repr,
    dict: _dumps_dict,
    list: _dumps_list,
}
