"""Which wire format a request gets, decided the way ServiceStack decides it.

Order (ServiceStack `HttpRequestExtensions.GetResponseContentType`, and the
pre-defined `/{format}/reply/{Op}` handlers):

1. `?format=`; an unknown value is ignored, never an error.
2. The first path segment (`/xml/reply/GetActiveSessions`) or a `.xml`-style
   suffix on the last segment (`/api/GetActiveSessions.xml`).
3. `Accept`, q-values respected; JSON wins a tie because it is the default.
4. `Accept: */*` or no `Accept`: the request's own `Content-Type` when it names
   a format, else JSON. This is what makes the TypeScript client, which sends
   `Content-Type: application/json` with fetch's `Accept: */*`, get JSON.

Pure: no Starlette, no Redis.
"""

from __future__ import annotations

from typing import Final, Literal

Format = Literal["json", "xml", "jsv", "csv"]

# Tie-break order when several formats are equally acceptable: JSON is
# ServiceStack's default content type, which it moves to the front.
PREFERENCE: Final[tuple[Format, ...]] = ("json", "xml", "jsv", "csv")

_BY_NAME: Final[dict[str, Format]] = {name: name for name in PREFERENCE}

# The media types each format answers to in Accept and Content-Type.
_MEDIA_TYPES: Final[dict[str, Format]] = {
    "application/json": "json",
    "application/xml": "xml",
    "text/xml": "xml",
    "text/jsv": "jsv",
    "text/csv": "csv",
}

# How specific a matching media range is (RFC 9110 12.5.1): the most
# specific range that matches a type decides that type's quality.
_EXACT, _SUBTYPE_WILDCARD, _ANY = 3, 2, 1


def negotiate(
    query_format: str | None, path: str, accept: str | None, content_type: str | None
) -> tuple[Format, str]:
    """Pick the response format; also return `path` without a `.json|.xml|
    .jsv|.csv` suffix, so the router matches `/api/GetActiveSessions.xml` as
    `/api/GetActiveSessions` whichever rule decided the format."""
    stripped, suffix_format = split_suffix(path)
    chosen = (
        format_from_query(query_format)
        or format_from_prefix(stripped)
        or suffix_format
        or format_from_accept(accept, content_type)
    )
    return chosen, stripped


def format_from_query(value: str | None) -> Format | None:
    """`?format=` as ServiceStack reads it: case-insensitive, anything after a
    dot dropped, and json/xml/jsv matched by containment (`?format=JSON`)."""
    if not value:
        return None
    name = value.split(".", 1)[0].lower()
    for candidate in ("json", "xml", "jsv"):
        if candidate in name:
            return _BY_NAME[candidate]
    return _BY_NAME.get(name)


def format_from_prefix(path: str) -> Format | None:
    """`/xml/reply/GetActiveSessions` -> xml: a first segment naming a format,
    followed by more path (a bare `/xml` is not a pre-defined route)."""
    head, sep, _ = path.lstrip("/").partition("/")
    return _BY_NAME.get(head.lower()) if sep else None


def split_suffix(path: str) -> tuple[str, Format | None]:
    """`/sessions/active.xml` -> (`/sessions/active`, xml). Unknown suffixes
    stay on the path: they are not ours to interpret."""
    last_slash = path.rfind("/")
    dot = path.rfind(".")
    if dot <= last_slash + 1:  # no dot in the last segment, or nothing before it
        return path, None
    fmt = _BY_NAME.get(path[dot + 1 :].lower())
    return (path[:dot], fmt) if fmt else (path, None)


def format_from_media_type(value: str | None) -> Format | None:
    """`application/json; charset=utf-8` -> json; parameters and case ignored."""
    if not value:
        return None
    return _MEDIA_TYPES.get(value.split(";", 1)[0].strip().lower())


def format_from_accept(accept: str | None, content_type: str | None) -> Format:
    """Best format for an Accept header; a win that only `*/*` granted defers
    to the request's Content-Type, as ServiceStack does."""
    ranges = parse_accept(accept)
    if not ranges:  # missing or empty Accept means */*
        ranges = [("*/*", 1.0)]
    scores = {fmt: _score(fmt, ranges) for fmt in PREFERENCE}
    best = max(PREFERENCE, key=lambda fmt: (scores[fmt], -PREFERENCE.index(fmt)))
    quality, specificity = scores[best]
    if quality <= 0.0:
        return "json"  # nothing we serve is acceptable: ServiceStack sends its default
    if specificity == _ANY:
        requested = format_from_media_type(content_type)
        if requested is not None and scores[requested] == scores[best]:
            return requested
    return best


def parse_accept(accept: str | None) -> list[tuple[str, float]]:
    """`text/xml;q=0.5, */*` -> [("text/xml", 0.5), ("*/*", 1.0)]. A range with
    an unreadable q-value is dropped rather than guessed at."""
    ranges: list[tuple[str, float]] = []
    for item in (accept or "").split(","):
        media_range, *params = item.split(";")
        media_range = media_range.strip().lower()
        if "/" not in media_range:
            continue
        quality = _quality(params)
        if quality is not None:
            ranges.append((media_range, quality))
    return ranges


def _quality(params: list[str]) -> float | None:
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                return min(max(float(value.strip()), 0.0), 1.0)
            except ValueError:
                return None
    return 1.0


def _score(fmt: Format, ranges: list[tuple[str, float]]) -> tuple[float, int]:
    """(quality, specificity) of `fmt`: over its media types, the quality the
    most specific matching range gives, then the best of those."""
    best = (0.0, 0)
    for media_type, owner in _MEDIA_TYPES.items():
        if owner != fmt:
            continue
        matched = _match(media_type, ranges)
        if matched is not None and matched > best:
            best = matched
    return best


def _match(
    media_type: str, ranges: list[tuple[str, float]]
) -> tuple[float, int] | None:
    kind = media_type.split("/", 1)[0]
    found: tuple[float, int] | None = None
    for media_range, quality in ranges:
        if media_range == media_type:
            specificity = _EXACT
        elif media_range == f"{kind}/*":
            specificity = _SUBTYPE_WILDCARD
        elif media_range == "*/*":
            specificity = _ANY
        else:
            continue
        if found is None or specificity > found[1]:
            found = (quality, specificity)
    return found
