"""Routes serving the API descriptions: `/types/<lang>`, `/types/metadata`,
`/metadata`, `/json/metadata?op=`, `/openapi.json`. Thin: everything they
send is built by the pure modules beside this one."""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable
from typing import Final

import msgspec
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from app.apidocs import csharp, metadata, openapi, pages, python, typescript
from app.apidocs.catalog import OPERATIONS_BY_NAME
from app.services import services
from app.web.errors import ApiError

GENERATORS: Final[dict[str, Callable[[metadata.MetadataTypes, str], str]]] = {
    "python": python.render,
    "typescript": typescript.render,
    "csharp": csharp.render,
}
_JSON: Final = "application/json; charset=utf-8"
_encode = msgspec.json.Encoder().encode


def base_url(request: Request) -> str:
    """PUBLIC_URL when set (behind a proxy), else the URL this request came to."""
    public: str = services(request).settings.public_url
    return public.rstrip("/") or str(request.base_url).rstrip("/")


async def types_metadata(request: Request) -> Response:
    return Response(_encode(metadata.build(base_url(request))), media_type=_JSON)


def dtos(generate: Callable[[metadata.MetadataTypes, str], str]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
        return Response(generate(metadata.build(base_url(request)), now), media_type="text/plain; charset=utf-8")

    return endpoint


async def metadata_index(request: Request) -> Response:
    return HTMLResponse(pages.index(base_url(request)))


async def operation_page(request: Request) -> Response:
    name = request.query_params.get("op")
    if name is None:
        return await metadata_index(request)
    op = OPERATIONS_BY_NAME.get(name.lower())
    if op is None:
        raise ApiError(404, "NotFound", f"Unknown operation {name[:100]!r}")
    lang = request.query_params.get("lang", "csharp").lower()
    if lang not in pages.LANGUAGES:
        raise ApiError(400, "ValidationError", f"Unknown lang {lang[:40]!r}; use one of: {', '.join(pages.LANGUAGES)}")
    return HTMLResponse(pages.operation(op, lang, base_url(request), request.url.netloc))


async def openapi_document(request: Request) -> Response:
    return Response(_encode(openapi.document(base_url(request))), media_type=_JSON)


def routes() -> list[Route]:
    return [
        Route("/types/metadata", types_metadata, methods=["GET"]),
        *(Route(f"/types/{lang}", dtos(generate), methods=["GET"]) for lang, generate in GENERATORS.items()),
        Route("/metadata", metadata_index, methods=["GET"]),
        Route("/json/metadata", operation_page, methods=["GET"]),
        Route("/openapi.json", openapi_document, methods=["GET"]),
    ]
