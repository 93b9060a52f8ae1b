"""The one body reader and bearer parser every route uses (app/web/requests.py),
fed raw ASGI messages as a server sends them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from starlette.requests import ClientDisconnect

from app.web.errors import ApiError
from app.web.requests import bearer_from_header, receive_body


def messages(*items: dict[str, Any]) -> Callable[[], Awaitable[dict[str, Any]]]:
    queue = list(items)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    return receive


async def test_a_body_in_chunks_is_joined() -> None:
    receive = messages({"type": "http.request", "body": b"ab", "more_body": True},
                       {"type": "http.request", "body": b"cd", "more_body": False})
    assert await receive_body(receive, None, 4) == b"abcd"


async def test_an_undeclared_body_over_the_limit_is_refused_as_it_arrives() -> None:
    receive = messages({"type": "http.request", "body": b"abc", "more_body": True},
                       {"type": "http.request", "body": b"de", "more_body": True})
    with pytest.raises(ApiError) as err:
        await receive_body(receive, None, 4)
    assert err.value.status == 413


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    with pytest.raises(ApiError) as err:
        await receive_body(messages(), b"5", 4)  # nothing is received: it would raise IndexError
    assert err.value.status == 413


async def test_a_client_that_leaves_mid_body_is_a_disconnect() -> None:
    receive = messages({"type": "http.request", "body": b"ab", "more_body": True}, {"type": "http.disconnect"})
    with pytest.raises(ClientDisconnect):
        await receive_body(receive, None, 10)


def test_bearer_header_parsing() -> None:
    assert bearer_from_header("Bearer abc ") == "abc"
    assert bearer_from_header("bearer abc") == "abc"
    assert bearer_from_header("Basic abc") is None
    assert bearer_from_header("Bearer ") is None
    assert bearer_from_header(None) is None
