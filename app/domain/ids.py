"""The id alphabet (pure): account, session, endpoint and event ids become parts
of Redis keys and JSON Pointers, so every entry point checks them by this one rule.

Checks are whole-string matches (`fullmatch`): with `match` and `$`, a final
newline would slip through (`$` also matches just before a trailing `\\n`)."""

from __future__ import annotations

import re
from typing import Final

ID_RULE: Final = "1-128 characters of A-Z a-z 0-9 _ . : @ + -"
_CLASS: Final = r"[A-Za-z0-9_.:@+\-]{1,128}"
_ID: Final = re.compile(_CLASS)
SCHEMA_PATTERN: Final = f"^{_CLASS}$"
"""The same rule for JSON Schema / OpenAPI (ECMA-262 regex: `$` is the end of the input)."""


def is_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None
