"""The `Options:` comment every Add ServiceStack Reference file starts with.

`npx get-dtos` re-reads it to update a file: `BaseUrl` says where from, and an
option without its comment prefix is sent back as a query option.

Pure: no Starlette, no Redis.
"""

from __future__ import annotations

from typing import Final

# The ServiceStack native-types layout these generators follow.
LAYOUT_VERSION: Final = "8.0"


def options_block(open_: str, close: str, prefix: str, tip_prefix: str, now: str, base_url: str,
                  options: list[tuple[str, str]]) -> str:
    """`open_` ... `close` with Date/Version/Tip/BaseUrl and one `prefix`ed line per option."""
    lines = [
        f"{open_} Options:",
        f"Date: {now}",
        f"Version: {LAYOUT_VERSION}",
        f'Tip: To override a DTO option, remove "{tip_prefix}" prefix before updating',
        f"BaseUrl: {base_url}",
        "",
        *(f"{prefix}{name}: {value}" for name, value in options),
        close,
        "",
    ]
    return "\n".join(lines) + "\n"


def flag(value: bool) -> str:
    """Booleans as .NET prints them."""
    return "True" if value else "False"
