"""A minimal HTTP/1.1 keep-alive client on asyncio.Protocol.

The load generator must cost far less than the server it measures, or every server looks alike:
requests are pre-built bytes, one in flight per connection, and a response is only split into
status and body (Content-Length framing, which is all uvicorn sends for these routes)."""

from __future__ import annotations

import asyncio


class HttpConnection(asyncio.Protocol):
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_connection(lambda: self, self.host, self.port)

    # asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError(f"connection to :{self.port} lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._waiter is None or self._waiter.done():
            return
        parsed = _parse(self._buf)
        if parsed is not None:
            status, body, used = parsed
            del self._buf[:used]
            self._waiter.set_result((status, body))

    # use -------------------------------------------------------------------------------------
    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self._transport is None or self._transport.is_closing():
            self._buf.clear()
            await self.connect()
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(raw)  # type: ignore[union-attr]
        return await self._waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def _parse(buf: bytearray) -> tuple[int, bytes, int] | None:
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).lower()
    status = int(head[9:12])
    length = 0
    i = head.find(b"\r\ncontent-length:")
    if i >= 0:
        j = head.find(b"\r\n", i + 2)
        length = int(head[i + 17: j if j >= 0 else len(head)])
    elif status not in (204, 304) and b"transfer-encoding: chunked" in head:
        raise ValueError("chunked responses are not supported by the bench client")
    total = end + 4 + length
    if len(buf) < total:
        return None
    return status, bytes(buf[end + 4: total]), total


def request_bytes(method: str, path: str, host: str, body: bytes = b"",
                  headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
