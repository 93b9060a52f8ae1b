"""What the settings that are more than a string mean (pure): the browser origins
of `ALLOWED_ORIGINS` and the per-account Twilio tokens of `TWILIO_AUTH_TOKENS`.

`app.config` checks them at start-up, so a bad value stops the service with a
clear error; the web and Twilio layers read them with the same rules. Imports
nothing of the app."""

from __future__ import annotations

from urllib.parse import urlsplit

import msgspec


def origin_of(url: str) -> str:
    """`https://Calls.Example.com:443/x` -> `https://calls.example.com` (RFC 6454 serialisation)."""
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.hostname:
        raise ValueError(f"not an origin: {url[:80]!r}")
    default = {"http": 80, "https": 443}.get(parts.scheme)
    port = f":{parts.port}" if parts.port is not None and parts.port != default else ""
    return f"{parts.scheme.lower()}://{parts.hostname.lower()}{port}"


def parse_origins(text: str) -> frozenset[str]:
    """`ALLOWED_ORIGINS`: comma- or space-separated origins. ValueError names a bad one."""
    return frozenset(origin_of(item) for item in text.replace(",", " ").split())


_token_map = msgspec.json.Decoder(dict[str, str | list[str]])


def parse_token_map(text: str) -> dict[str, list[str]]:
    """`TWILIO_AUTH_TOKENS`: a JSON object of AccountSid to a token or a list of
    tokens (rotation). ValueError when it is not that shape."""
    if not text.strip():
        return {}
    try:
        raw = _token_map.decode(text)
    except msgspec.DecodeError as exc:
        raise ValueError(f"TWILIO_AUTH_TOKENS must be a JSON object of AccountSid to token(s): {exc}") from None
    return {sid: [value] if isinstance(value, str) else list(value) for sid, value in raw.items()}
