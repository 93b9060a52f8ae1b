"""The hottest routes served beside Starlette's router, not through it: `GET /sessions/active`
(the read every dashboard polls) and the Twilio webhooks (`POST /twilio/status`,
`/twilio/conference`), the service's most frequent requests.

Through Starlette a request passes its error middleware, the app's middleware, its exception
middleware, and the router, which tries routes in order until one matches. For a cached read
that machinery cost more than the read itself: measured in-process (`python -m bench.inprocess
read --quiet`: the app alone, no HTTP server, 32 concurrent cached reads, access lines off),
87 to 92 µs of CPU per read through the router, 33 µs here. `direct` runs the same handlers with the same middleware (the access line and request
id, CORS) and the same exception handlers, so the response is what the router would have
sent, byte for byte (tests/web/test_direct.py compares them: a read, its cache hit, XML, a
304, refused credentials, the cookie's origin rule, a store outage; an applied, a duplicate,
a forged and an invalid webhook).

What a route served here gives up, and why it does not matter for these: path parameters
(they have none), method dispatch (only their own method comes here; HEAD, OPTIONS preflights
and the other methods still go through the router, which answers them as before), and
Starlette's debug tracebacks (the service never runs in debug)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Handler = Callable[[Request], Awaitable[Response]]
ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]
Handlers = Mapping[type[BaseException], ExceptionHandler]


def endpoint(handler: Handler, exception_handlers: Handlers) -> ASGIApp:
    """A Starlette request handler as a bare ASGI app: an exception it raises becomes the
    response of the handler registered for the nearest class in its MRO, as Starlette's
    exception middleware makes it (one no handler takes propagates, as it would there)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except Exception as exc:  # noqa: BLE001 - answered by its handler, or re-raised by _answer
            response = await _answer(request, exc, exception_handlers)
        await response(scope, receive, send)

    return app


def asgi_endpoint(inner: ASGIApp, exception_handlers: Handlers) -> ASGIApp:
    """A plain ASGI endpoint (the Twilio webhooks) with the same exception handling: an
    exception raised before the response started is answered; after, it propagates."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await inner(scope, receive, sending)
        except Exception as exc:  # noqa: BLE001 - answered by its handler, or re-raised by _answer
            if started:
                raise
            request = Request(scope, receive)
            await (await _answer(request, exc, exception_handlers))(scope, receive, send)

    return app


def handler_for(exc: Exception, exception_handlers: Handlers) -> ExceptionHandler | None:
    """The handler registered for the nearest class in `exc`'s MRO, as Starlette looks it
    up (its lookup is private). Status-code keys are not consulted: the app registers its
    handlers by class only (app.web.errors.HANDLERS)."""
    return next((exception_handlers[cls] for cls in type(exc).__mro__ if cls in exception_handlers), None)


async def _answer(request: Request, exc: Exception, exception_handlers: Handlers) -> Response:
    found = handler_for(exc, exception_handlers)
    if found is None:
        raise exc
    return await found(request, exc)


def wrapped(app: ASGIApp, middleware: Iterable[Middleware]) -> ASGIApp:
    """`app` inside `middleware`, the first outermost (as Starlette orders the app's own)."""
    for cls, args, kwargs in reversed(list(middleware)):
        app = cls(app, *args, **kwargs)
    return app
