"""Drills on connections: a flood of sockets that never authenticate (and handshakes
with oversize headers), and slow consumers that stop reading while patches flow."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from bench.drills.clients import Viewer, manager_token, server_sockets, show, stalled_socket
from bench.drills.failures import _converged, _fill, _stop
from bench.drills.processes import Redis, Service, open_fds, rss_bytes
from bench.servers import wait_until


async def connection_flood(quick: bool) -> dict[str, Any]:
    count, oversize = (100, 20) if quick else (1000, 200)
    auth_timeout = 1.0 if quick else 5.0
    store = Redis(aof=False)
    service = Service(store.url, env={"LIVE_AUTH_TIMEOUT": str(auth_timeout)})
    sockets: list[socket.socket] = []
    try:
        fds_idle, rss_idle = open_fds(service.pid), rss_bytes(service.pid)
        sockets = [stalled_socket(service.port, None) for _ in range(count)]
        fds_peak, rss_peak = open_fds(service.pid), rss_bytes(service.pid)
        opened = time.monotonic()
        cleared = wait_until(lambda: server_sockets(service.pid, service.port) == 0, auth_timeout + 30,
                           "unauthenticated sockets closed")
        closed_by_server = time.monotonic() - opened
        answered = sum(_oversize_answer(service.port) == b"431" for _ in range(oversize))
        return show("connection_flood", {
            "sockets": count, "fds_idle": fds_idle, "fds_peak": fds_peak, "fds_after": open_fds(service.pid),
            "all_closed_s": closed_by_server, "auth_timeout_s": auth_timeout, "cleared_in_s": cleared,
            "oversize_handshakes": oversize, "oversize_answered_431": answered,
            "rss_idle_mb": rss_idle / 2**20, "rss_peak_mb": rss_peak / 2**20})
    finally:
        for s in sockets:
            s.close()
        service.stop()
        store.stop()


def _oversize_answer(port: int) -> bytes:
    """The status of an upgrade whose cookie line is over 8 KiB ('' if no answer in 5 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall((f"GET /sessions/live HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      f"Sec-WebSocket-Version: 13\r\nCookie: ss-tok={'a' * 9000}\r\n\r\n").encode())
        try:
            return sock.recv(64).split(b" ")[1]
        except (TimeoutError, IndexError):
            return b""


async def slow_consumers(quick: bool) -> dict[str, Any]:
    count, write_timeout = (5, 1.0) if quick else (20, 10.0)
    store = Redis(aof=False)
    service = Service(store.url, env={"LIVE_WRITE_TIMEOUT": str(write_timeout)})
    sockets: list[socket.socket] = []
    try:
        viewer = Viewer([service.url])
        task = asyncio.create_task(viewer.run())
        await viewer.live()
        rss_before = rss_bytes(service.pid)
        sockets = [stalled_socket(service.port, manager_token()) for _ in range(count)]
        started = time.monotonic()
        await _fill(service.url, 6)
        torn_down = wait_until(lambda: server_sockets(service.pid, service.port) <= 1, write_timeout * 2 + 30,
                             "stalled readers torn down")
        teardown_s = time.monotonic() - started
        converged = await _converged(viewer, service.url, 10)
        await _stop(viewer, task)
        return show("slow_consumers", {
            "stalled_readers": count, "write_timeout_s": write_timeout, "torn_down_s": teardown_s,
            "waited_after_fill_s": torn_down, "healthy_gaps": viewer.gaps, "healthy_duplicates": viewer.duplicates,
            "healthy_resets": viewer.resets, "healthy_matches_rest": converged,
            "rss_before_mb": rss_before / 2**20, "rss_after_mb": rss_bytes(service.pid) / 2**20})
    finally:
        for s in sockets:
            s.close()
        service.stop()
        store.stop()
