"""Drills where a part dies: Redis killed -9 and restarted (with and without AOF) under a
steady event stream with a live viewer; a service process killed mid-stream while its
viewer resumes on another; SIGTERM with stalled readers present."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx

from bench.drills.clients import Stream, Viewer, active_ids, manager_token, show, stalled_socket, upsert
from bench.drills.processes import EVENTS_KEY, Redis, Service, rss_bytes


async def _converged(viewer: Viewer, base: str, timeout: float) -> bool:
    """The viewer's state equals GET /sessions/active (bounded wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if set(viewer.state) == await active_ids(base):
            return True
        await asyncio.sleep(0.1)
    return False


async def _stop(*tasks_and_parts: Any) -> None:
    for part in tasks_and_parts:
        if isinstance(part, (Stream, Viewer)):
            part.stop()
    tasks = [t for t in tasks_and_parts if isinstance(t, asyncio.Task)]
    for t in tasks:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(t), 5)
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def redis_restart(quick: bool, aof: bool) -> dict[str, Any]:
    steady, after = (1.0, 2.0) if quick else (10.0, 20.0)
    store = Redis(aof=aof)
    service = Service(store.url)
    try:
        stream, viewer = Stream([service.url], rate=40 if quick else 100), Viewer([service.url])
        tasks = [asyncio.create_task(viewer.run()), asyncio.create_task(stream.run())]
        await viewer.live()
        await asyncio.sleep(steady)
        store.kill()
        await asyncio.sleep(0.5)
        # Counted once Redis has been down a while: nothing is accepted meanwhile, but the answer
        # to a request committed just before the kill may still arrive after it.
        acked_before_kill = len(stream.accepted)
        store.start()
        restarted = time.monotonic()
        await asyncio.sleep(after)
        await _stop(stream, *tasks[1:])
        final = await active_ids(service.url)
        converged = await _converged(viewer, service.url, 10)
        await _stop(viewer, tasks[0])
        lost = [sid for sid in stream.accepted if sid not in final]
        recover = (stream.recovered_at - restarted) if stream.recovered_at else float("nan")
        return show(f"redis_restart[{'aof' if aof else 'no-persistence'}]", {
            "accepted": len(stream.accepted), "accepted_before_kill": acked_before_kill,
            "unavailable_503": stream.unavailable, "failed": stream.failed, "accepted_then_lost": len(lost),
            "gaps": viewer.gaps, "duplicates": viewer.duplicates, "resets": viewer.resets,
            "reconnects": viewer.reconnects, "viewer_matches_rest": converged,
            "recover_s": max(0.0, recover), "rss_mb": rss_bytes(service.pid) / 2**20})
    finally:
        service.stop()
        store.stop()


async def process_kill(quick: bool) -> dict[str, Any]:
    store = Redis(aof=True)
    first, second = Service(store.url), Service(store.url)
    try:
        stream, viewer = Stream([second.url], rate=40 if quick else 100), Viewer([first.url, second.url])
        tasks = [asyncio.create_task(viewer.run()), asyncio.create_task(stream.run())]
        await viewer.live()
        await asyncio.sleep(1.5 if quick else 10)
        at_kill = viewer.cursor
        first.kill()
        killed = time.monotonic()
        while viewer.cursor <= at_kill + 1 and time.monotonic() - killed < 15:
            await asyncio.sleep(0.01)
        resumed = time.monotonic() - killed
        await asyncio.sleep(1.5 if quick else 10)
        await _stop(stream, *tasks[1:])
        converged = await _converged(viewer, second.url, 10)
        await _stop(viewer, tasks[0])
        final = await active_ids(second.url)
        return show("process_kill", {
            "accepted": len(stream.accepted), "accepted_then_lost": sum(s not in final for s in stream.accepted),
            "gaps": viewer.gaps, "duplicates": viewer.duplicates, "resets": viewer.resets,
            "reconnects": viewer.reconnects, "viewer_matches_rest": converged, "resume_s": resumed})
    finally:
        first.stop()
        second.stop()
        store.stop()


async def sigterm_with_stalled_readers(quick: bool) -> dict[str, Any]:
    stalled_count = 5 if quick else 20
    store = Redis(aof=False)
    # A drain that would wait for every connection to go, however long: only closing the
    # stalled ones at once lets the process exit before it is killed.
    service = Service(store.url, env={"LIVE_DRAIN_TIMEOUT": "60"})
    sockets = []
    try:
        viewer = Viewer([service.url])
        task = asyncio.create_task(viewer.run())
        await viewer.live()
        sockets = [stalled_socket(service.port, manager_token()) for _ in range(stalled_count)]
        await _fill(service.url, 6)  # patches the stalled readers never read
        exit_s, by_itself = await asyncio.to_thread(service.terminate, 15)
        await _stop(viewer, task)
        log = service.output()
        return show("sigterm_stalled", {
            "stalled_readers": stalled_count, "exit_s": exit_s, "exited_by_itself": by_itself, "healthy_got_3001": viewer.closes.get(3001, 0),
            "handshake_errors_logged": log.count("without completing handshake"),
            "tracebacks_logged": log.count("Traceback")})
    finally:
        for s in sockets:
            s.close()
        service.stop()
        store.stop()


async def _fill(base: str, megabytes: int) -> None:
    """About `megabytes` MB of patches (20 sessions rewritten with 4 KB fields)."""
    pad = "x" * 4000
    async with httpx.AsyncClient(timeout=30) as http:
        for batch in range(megabytes * 250 // 200 + 1):
            events = [upsert(f"F{i % 20}", batch * 1000 + i, pad) for i in range(200)]
            r = await http.post(base + "/events", json={"events": events},
                                headers={"Authorization": f"Bearer {EVENTS_KEY}"})
            r.raise_for_status()
