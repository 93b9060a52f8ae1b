"""`python -m app serve` under granian (SERVER=granian): the same app through plain ASGI, to be
measured against uvicorn (`python -m bench --server uvicorn,granian`, bench/README.md).

Granian runs embedded (`granian.server.embed.Server`), in this process and on this uvloop loop,
one worker, as uvicorn does here; so the bench measures the process it started (RSS, CPU), and
signals reach the lifespan's SIGTERM drain (app.live.signals) first: granian's own process
server (`granian --interface asgi`) installs a loop signal handler in its worker that starts its
shutdown on the same signal, in parallel with the drain. Here SIGTERM (after the drain) and
SIGINT stop the server; it then closes what is still open, and the lifespan shuts down.

What the live protocol relies on and granian does not give (docs/operations.md, "Server", has
the table and what was measured): its frame parser has no size limit of ours (an oversized
message is read, up to 16 MiB, before the app refuses it), it has no hook for the per-socket
kernel send buffer (LIVE_SOCKET_SEND_BUFFER) nor a way to abort a connection whose reader
stopped reading, and its `send` always completes on its own thread, so the live pump's
write-without-a-task path never happens."""

from __future__ import annotations

import asyncio
import signal
from types import FrameType

import uvloop
from granian.constants import HTTPModes, Interfaces
from granian.log import LogLevels
from granian.server.embed import Server

from app.composition import serving
from app.config import Settings

# Granian admits at most `backpressure` connections at once per worker (default: the listen
# backlog, 1,024); a live socket is one for hours, so the bound is set far above what one
# process holds (issue 14 measures 10,000).
MAX_CONNECTIONS = 1 << 20
BACKLOG = 2048
# How long shutdown waits for the worker (its connections and the lifespan) before cancelling
# it, as uvicorn's timeout_graceful_shutdown (10 s) in app.__main__.
KILL_TIMEOUT = 10


def serve(settings: Settings, log_level: str) -> int:
    uvloop.run(_serve(settings, log_level))
    return 0


async def _serve(settings: Settings, log_level: str) -> None:
    server = Server(
        serving(settings), address=settings.host, port=settings.port, interface=Interfaces.ASGI, factory=True,
        http=HTTPModes.http1, websockets=True, backlog=BACKLOG, backpressure=MAX_CONNECTIONS,
        log_level=LogLevels(log_level), log_access=False,
    )
    server.workers_kill_timeout = KILL_TIMEOUT  # the embedded constructor does not take it
    loop = asyncio.get_running_loop()

    def stop(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(server.stop)

    # Python-level handlers, not `loop.add_signal_handler`: the lifespan's drain replaces the
    # SIGTERM one and calls it once the live clients have been told to go (app.live.signals).
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    await server.serve()
