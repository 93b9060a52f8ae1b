"""Load generators run as separate processes; this is how they are started and talked to.

A worker is `module:function(conn, *args)` in a fresh (spawned) interpreter; the parent and the
worker exchange picklable messages over a pipe. Async workers run on uvloop when it is there,
like the service itself."""

from __future__ import annotations

import asyncio
import importlib
import multiprocessing as mp
import resource
import traceback
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import Any

_ctx = mp.get_context("spawn")


def raise_fd_limit() -> None:
    """Thousands of sockets need thousands of descriptors: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_async(main: Awaitable[Any]) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return asyncio.run(main)  # type: ignore[arg-type]
    return uvloop.run(main)  # type: ignore[arg-type]


def _entry(target: str, conn: Connection, args: tuple[Any, ...]) -> None:
    raise_fd_limit()
    module, _, name = target.partition(":")
    func: Callable[..., Any] = getattr(importlib.import_module(module), name)
    try:
        func(conn, *args)
    except Exception:  # noqa: BLE001 - reported to the parent, which fails the scenario
        try:
            conn.send(("error", traceback.format_exc()))
        except (BrokenPipeError, OSError):
            pass
    finally:
        conn.close()


class Worker:
    """One load-generator process and the parent's end of its pipe."""

    def __init__(self, target: str, *args: Any) -> None:
        self.conn, child = _ctx.Pipe()
        self.proc = _ctx.Process(target=_entry, args=(target, child, args), daemon=True)
        self.proc.start()
        child.close()

    @property
    def pid(self) -> int:
        return int(self.proc.pid or 0)

    def send(self, message: Any) -> None:
        self.conn.send(message)

    def recv(self, timeout: float = 300.0) -> Any:
        if not self.conn.poll(timeout):
            raise TimeoutError(f"load generator {self.pid} sent nothing for {timeout}s")
        message = self.conn.recv()
        if isinstance(message, tuple) and message and message[0] == "error":
            raise RuntimeError(f"load generator {self.pid} failed:\n{message[1]}")
        return message

    def ask(self, message: Any, timeout: float = 300.0) -> Any:
        self.send(message)
        return self.recv(timeout)

    def stop(self) -> None:
        if self.proc.is_alive():
            try:
                self.conn.send(("exit",))
            except (BrokenPipeError, OSError):
                pass
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()


def ask_all(workers: list[Worker], message: Any, timeout: float = 300.0) -> list[Any]:
    """Send one message to every worker at once, then collect every answer."""
    for w in workers:
        w.send(message)
    return [w.recv(timeout) for w in workers]
