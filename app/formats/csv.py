"""ServiceStack's CSV for a response DTO that is a plain POCO.

ServiceStack only spreads "the first IEnumerable property" over rows when the
response DTO has `[DataContract]` or `[Csv]`. `GetActiveSessionsResponse` and
`ErrorResponse` are written whole instead (`CsvWriter<T>.Write` of one
record): one header row of C# property names, then one row whose fields are
the values, complex ones JSV-encoded. A field is quoted, `"` doubled, when it
holds `"` `,` CR or LF or starts with `[` or `{` (ServiceStack.Text
`CsvWriter.HasAnyEscapeChars`), so a JSV list always is. Rows end CRLF.

Pure: no Starlette, no Redis.
"""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec

from app.formats import jsv
from app.domain.dtos import ErrorResponse, GetActiveSessionsResponse, pascal

MEDIA_TYPE: Final = "text/csv"

_ROW_END: Final = "\r\n"
_NEEDS_QUOTES: Final = re.compile(r'^[\[{]|[",\r\n]')


def content_disposition(op_name: str) -> str:
    """ServiceStack's CsvFormat names the download after the operation."""
    return f"attachment;filename={op_name}.csv"


def encode(dto: GetActiveSessionsResponse | ErrorResponse) -> bytes:
    """Header row and the single record row."""
    header, names = _LAYOUTS[type(dto)]
    builtins = msgspec.to_builtins(dto)
    fields = [_field(builtins.get(name)) for name in names]
    return (header + ",".join(fields) + _ROW_END).encode("utf-8")


def quote(text: str) -> str:
    """ServiceStack.Text `ToCsvField`."""
    if _NEEDS_QUOTES.search(text) is None:
        return text
    return '"' + text.replace('"', '""') + '"'


def _field(value: Any) -> str:
    """A null is an empty field; a string goes in as is; anything else as its
    JSV text, with surrounding quotes stripped (`StripQuotes`) before the CSV
    quoting."""
    if value is None:
        return ""
    if isinstance(value, str):
        return quote(value)
    text = jsv.dumps(value)
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1]
    return quote(text)


def _layout(cls: type[msgspec.Struct]) -> tuple[str, tuple[str, ...]]:
    """(header row, wire names to read the values by): C# property names in
    the header, camelCase keys in what `to_builtins` returns."""
    header = ",".join(pascal(name) for name in cls.__struct_fields__) + _ROW_END
    return header, cls.__struct_encode_fields__


_LAYOUTS: Final = {
    cls: _layout(cls) for cls in (GetActiveSessionsResponse, ErrorResponse)
}
