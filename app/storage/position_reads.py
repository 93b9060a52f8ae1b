"""Batched reads of account positions (epoch, cursor).

Every `position(account)` asked for in the same event-loop turn goes to Redis
in ONE batch (one `MGET epoch seq` per distinct account, each within the
account's hash slot), so under concurrency a read costs a fraction of a round
trip. While a batch is on the wire, new asks wait for the next one: a batch is
always sent after every ask in it was made, so the position it returns is at
least as new as Redis was when each asker arrived (that is what lets a cached
snapshot be served without going stale). Read-only: an absent epoch is
reported as None, never created here."""

from __future__ import annotations

import asyncio
import logging

from app.storage import keys
from app.redis_io import REDIS_DOWN, Redis, wrap
from app.redis_io.replies import text
from app.domain.positions import Position
from app.storage.session_store import StoreUnavailable

log = logging.getLogger("app.storage.position_reads")


class PositionBatcher:
    def __init__(self, redis: Redis, max_in_flight: int = 1, max_batch: int = 512) -> None:
        self.redis = wrap(redis)
        self.max_in_flight = max_in_flight
        self.max_batch = max_batch
        self._pending: dict[str, list[asyncio.Future[Position]]] = {}
        self._scheduled = False
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.round_trips = 0  # batches sent
        self.asks = 0

    async def position(self, account_id: str) -> Position:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Position] = loop.create_future()
        waiters = self._pending.get(account_id)
        if waiters is None:
            self._pending[account_id] = [future]
        else:
            waiters.append(future)
        self.asks += 1
        if not self._scheduled:
            self._scheduled = True
            # Runs after every callback already queued for this turn, so all of
            # this turn's asks share the batch.
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        while self._pending and self._in_flight < self.max_in_flight:
            batch = self._take()
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take(self) -> dict[str, list[asyncio.Future[Position]]]:
        if len(self._pending) <= self.max_batch:
            batch, self._pending = self._pending, {}
            return batch
        batch = {}
        for account in list(self._pending)[: self.max_batch]:
            batch[account] = self._pending.pop(account)
        return batch

    async def _send(self, batch: dict[str, list[asyncio.Future[Position]]]) -> None:
        try:
            accounts = list(batch)
            self.round_trips += 1
            try:
                replies = await self.redis.run([("MGET", keys.epoch(a), keys.seq(a)) for a in accounts])
            except REDIS_DOWN as exc:
                _fail(batch, StoreUnavailable(str(exc)))
                return
            except asyncio.CancelledError:
                _fail(batch, StoreUnavailable("position read cancelled"))
                raise
            except Exception as exc:  # noqa: BLE001 - every waiter gets it, nobody hangs
                _fail(batch, exc)
                return
            for account, reply in zip(accounts, replies):
                if isinstance(reply, Exception):
                    _fail({account: batch[account]}, StoreUnavailable(str(reply)))
                    continue
                epoch, seq = reply
                pos = Position(text(epoch) if epoch is not None else None, int(seq or 0))
                for future in batch[account]:
                    if not future.done():
                        future.set_result(pos)
        finally:
            self._in_flight -= 1
            if self._pending and not self._scheduled:
                self._flush()

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except asyncio.CancelledError:
                pass
        _fail(self._pending, StoreUnavailable("shutting down"))
        self._pending = {}


def _fail(batch: dict[str, list[asyncio.Future[Position]]], exc: BaseException) -> None:
    for waiters in batch.values():
        for future in waiters:
            if not future.done():
                future.set_exception(exc)
