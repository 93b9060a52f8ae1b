"""The HTML metadata pages: `/metadata` (every operation) and
`/json/metadata?op=...&lang=...` (one operation: description, auth and role,
routes, its DTOs in a language, a sample HTTP + JSON exchange), laid out as
ServiceStack's metadata pages.

Pure: no Starlette, no Redis.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Final

import msgspec

from app.apidocs import csharp, python, typescript
from app.apidocs.catalog import OPERATIONS, Operation
from app.apidocs.metadata import MetadataTypes, build
from app.apidocs.samples import sample

SERVICE_NAME: Final = "callstate"
# `lang` -> (label, module without the options header).
LANGUAGES: Final[dict[str, tuple[str, Callable[[MetadataTypes], str]]]] = {
    "csharp": ("C#", csharp.module),
    "python": ("Python", python.module),
    "typescript": ("TypeScript", typescript.module),
}
_STYLE: Final = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
                 "pre{background:#f6f8fa;padding:1em;overflow:auto}table{border-collapse:collapse}"
                 "td,th{padding:.2em .6em;text-align:left}")


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body>{body}</body></html>")


def index(base_url: str) -> str:
    rows = "".join(
        f'<tr><td><a href="/json/metadata?op={op.name}">{op.name}</a></td><td>{escape(op.description)}</td>'
        f"<td>{' '.join(escape(r.verbs + ' ' + r.path) for r in op.routes)}</td></tr>"
        for op in OPERATIONS
    )
    langs = " ".join(f'<a href="/types/{lang}">{label}</a>' for lang, (label, _) in LANGUAGES.items())
    body = (f"<h1>{SERVICE_NAME}</h1><p>The following operations are supported.</p>"
            f"<table><tr><th>Operation</th><th>Description</th><th>Routes</th></tr>{rows}</table>"
            f"<h2>Add ServiceStack Reference</h2><p>DTOs: {langs}, <a href=\"/types/metadata\">metadata</a>. "
            f"<code>npx get-dtos python {escape(base_url)}</code></p>"
            '<h2>API descriptions</h2><p><a href="/openapi.json">OpenAPI 3.1</a> for every HTTP route; '
            "the live protocol is described by <code>docs/asyncapi.yaml</code> (AsyncAPI 3).</p>")
    return _page(f"{SERVICE_NAME} metadata", body)


def operation(op: Operation, lang: str, base_url: str, host: str) -> str:
    """The operation page, with its DTOs in `lang` (a key of LANGUAGES)."""
    label, render_module = LANGUAGES[lang]
    dtos = render_module(build(base_url, (op,)))
    routes = "".join(f"<tr><th>{escape(r.verbs)}</th><td>{escape(r.path)}</td></tr>" for r in op.routes)
    langs = " ".join(f'<a href="/json/metadata?op={op.name}&amp;lang={key}">{name}</a>'
                     for key, (name, _) in LANGUAGES.items())
    response = msgspec.json.format(msgspec.json.encode(sample(op.response)).decode(), indent=2)
    path = op.routes[0].path
    body = (
        f'<h1>{SERVICE_NAME}</h1><p><a href="/metadata">&lt;back to all web services</a></p>'
        f"<h2>{op.name}</h2><p>{escape(op.description)}</p>"
        f"<p>Requires Authentication</p><p>Required role: {escape(op.required_role)}</p>"
        f"<p>The following routes are available for this service:</p><table>{routes}</table>"
        f"<p>{langs}</p><pre id=\"dtos\">{escape(dtos)}</pre><p>{label} {op.name} DTOs</p>"
        "<p>To override the Content-type in your clients, use the HTTP Accept Header, "
        "append the .json suffix or ?format=json</p><h3>HTTP + JSON</h3>"
        "<p>The following are sample HTTP requests and responses. "
        "The placeholders shown need to be replaced with actual values.</p>"
        f"<pre>GET {escape(path)} HTTP/1.1 \nHost: {escape(host)} \nAccept: application/json</pre>"
        "<pre>HTTP/1.1 200 OK\nContent-Type: application/json\nContent-Length: length\n\n"
        f"{escape(response)}</pre>"
    )
    return _page(f"{op.name} | {SERVICE_NAME}", body)
