"""Where the browser meets the service: a server restarted on the port its
clients know, and a middlebox that refuses what hostile proxies refuse."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from tests.support.processes import ServiceProcess


def service_on_port(redis_url: str, port: int, env: dict[str, str] | None = None) -> ServiceProcess:
    """A ServiceProcess on a chosen port: a killed server restarted where its clients left it."""
    return ServiceProcess(redis_url, env, port=port)


class Middlebox:
    """A loopback TCP proxy in front of the service. It refuses WebSocket
    upgrades (403, as a proxy that does not speak them would) and optionally
    event streams; everything else is piped through byte for byte, one request
    per connection. `drop()` cuts every open connection, like a network blip."""

    def __init__(self, upstream_port: int, *, refuse_websocket: bool = True, refuse_event_stream: bool = False) -> None:
        self.upstream_port = upstream_port
        self.refuse_websocket = refuse_websocket
        self.refuse_event_stream = refuse_event_stream
        self.refused: list[str] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(10)
        self.url = f"http://127.0.0.1:{self.port}"

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers = [writer]
        self._writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lower = head.lower()
            upgrade = b"upgrade: websocket" in lower
            if (upgrade and self.refuse_websocket) or (self.refuse_event_stream and b"text/event-stream" in lower):
                self.refused.append(head.split(b"\r\n", 1)[0].decode(errors="replace"))
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                await writer.drain()
                return
            if not upgrade:  # one request per connection, so every request is looked at
                lines = [ln for ln in head[:-4].split(b"\r\n") if not ln.lower().startswith(b"connection:")]
                head = b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n"
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            writers.append(up_writer)
            self._writers.add(up_writer)
            up_writer.write(head)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, OSError):
            pass
        finally:
            for each in writers:
                each.close()
                self._writers.discard(each)
            for each in writers:
                with contextlib.suppress(Exception):
                    await each.wait_closed()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    def drop(self) -> None:
        self._loop.call_soon_threadsafe(self._cut)

    def _cut(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()

    async def _shutdown(self) -> None:
        self._server.close()
        self._cut()
        await asyncio.sleep(0.05)  # let the aborted connections' handlers finish
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        await asyncio.sleep(0.05)  # closed transports let go of their sockets on the next turns

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
