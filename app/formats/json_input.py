"""Decoding JSON that came from outside (pure): one rule for every entry point.

msgspec refuses nesting deeper than the interpreter's recursion limit with a
`RecursionError`, which is not a `DecodeError`: left alone it becomes a 500.
Here it is a `DecodeError` like any other malformed input, so each caller's
existing 400 path handles it."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

T = TypeVar("T")

ANY: msgspec.json.Decoder[Any] = msgspec.json.Decoder()  # untyped: objects, arrays, scalars


class TooDeep(msgspec.DecodeError):
    """Nested deeper than the decoder follows."""


def decode(data: str | bytes, decoder: msgspec.json.Decoder[T]) -> T:
    """`decoder.decode(data)`, where every refusal is a `msgspec.DecodeError`."""
    try:
        return decoder.decode(data)
    except RecursionError:
        raise TooDeep("JSON is nested too deeply") from None
