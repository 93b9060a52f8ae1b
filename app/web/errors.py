"""Every error leaves as `{"responseStatus":{...}}` in the negotiated format.

Exceptions carry data; they become responses here, in one place."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from app.auth.tokens import AuthError
from app.domain.dtos import ErrorResponse, ResponseError, ResponseStatus
from app.domain.platform_events import BatchInvalid
from app.formats import Format, negotiate, render
from app.storage.session_store import StoreUnavailable
from app.twilio.callbacks import CallbackInvalid

log = logging.getLogger("app.errors")


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        error_code: str,
        message: str,
        errors: list[ResponseError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.errors = errors or []
        self.headers = headers or {}


def request_format(request: Request) -> Format:
    fmt, _ = negotiate(
        request.query_params.get("format"),
        request.url.path,
        request.headers.get("accept"),
        request.headers.get("content-type"),
    )
    return fmt


def error_response(request: Request, exc: ApiError) -> Response:
    dto = ErrorResponse(
        response_status=ResponseStatus(error_code=exc.error_code, message=exc.message, errors=exc.errors)
    )
    out = render(request_format(request), dto)
    return Response(out.body, status_code=exc.status, media_type=out.media_type, headers={**out.headers, **exc.headers})


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(request, exc)


async def auth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthError)
    headers = {"WWW-Authenticate": 'Bearer realm="/auth/jwt"'} if exc.status == 401 else {}
    return error_response(request, ApiError(exc.status, exc.error_code, exc.message, headers=headers))


async def batch_invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BatchInvalid)
    return error_response(request, ApiError(400, "ValidationError", "The batch is invalid; nothing was applied",
                                            exc.errors))


async def callback_invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CallbackInvalid)
    log.warning("twilio callback rejected on %s: %s", request.url.path, exc)
    return error_response(request, ApiError(400, "ValidationError", "Invalid Twilio callback", exc.errors))


async def store_unavailable(request: Request, exc: Exception) -> Response:
    log.error("store unavailable on %s %s: %s", request.method, request.url.path, exc)
    return error_response(request, ApiError(503, "ServiceUnavailable", "Session store unavailable; retry later"))


async def unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(request, ApiError(500, "InternalServerError", "Internal error"))


async def http_exception(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    detail = getattr(exc, "detail", None) or "Error"
    codes = {404: "NotFound", 405: "MethodNotAllowed"}
    return error_response(request, ApiError(status, codes.get(status, str(status)), str(detail)))


HANDLERS = {
    ApiError: api_error,
    AuthError: auth_error,
    BatchInvalid: batch_invalid,
    CallbackInvalid: callback_invalid,
    StoreUnavailable: store_unavailable,
    HTTPException: http_exception,
    Exception: unexpected,
}
