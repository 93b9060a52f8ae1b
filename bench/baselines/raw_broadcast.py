"""The raw fan-out ceiling (issue 14, item 2): the `websockets` library's own asyncio server, no
ASGI, no uvicorn, no live protocol, writing each event's frame to its account's sockets with
`websockets.broadcast()`. What the fan-out scenario's figures are measured against to say how
close the service is to what Python does on this machine.

Two entry points, one per process, in the topology of the other live sides (sockets on one
process, events posted to the others, reaching the sockets' process through Redis):

- `python -m bench.baselines.raw_broadcast` (the push process): `websockets.asyncio.server.serve`
  on HOST:PORT, on uvloop (the service's event loop), compression off (as the service), the
  library's settings otherwise. A socket's bearer token (the same JWT, verified once at connect)
  names its account; only whole-account viewers are taken (the fan-out scenario's all are), so
  the account is the room. It gets a `snapshot` without sessions, then a `patch` per event of its
  account: the frame the service sends for the fleet's stamped upsert,
  `{"type":"patch","cursor":N,"ops":[{"op":"replace","path":"/<session>/consoleData","value":"bench:<ns>"}]}`
  (a `replace` per field the event sets, a cursor counted per account), encoded once per event
  and broadcast as one text frame. The fleet's `callstate` client reads it with exactly the work
  it does for ours. (The service adds a `dateLastModified` op on a session's first change and a
  state digest every 50th patch: the bytes per frame row shows the difference.)
- `app()` (the ingest processes, under uvicorn like every baseline): `POST /events` checks the
  events key and PUBLISHes the body as it came on one Redis channel; the push process decodes it.

Why Redis pub/sub, not the POSTs handled inside the push process: the push-process CPU per 1,000
frames then counts what it counts for the service (read a publication, encode a frame once,
write it to every socket), and the event ingress is counted apart on every side (all-process
CPU). This ingest keeps no state (the service commits each event in Redis first), so the
all-process figures, and the CPU left over on a shared machine, favour this side; the
push-process figures compare like with like. On a Redis Cluster: classic PUBLISH/SUBSCRIBE on
the node REDIS_URL names (a cluster forwards a PUBLISH to every node), as the socket.io baseline
does."""

from __future__ import annotations

import asyncio
import os
import secrets
from http import HTTPStatus

import msgspec
import redis.asyncio as aioredis
import uvloop
from redis.asyncio.client import PubSub
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.http11 import Request as HandshakeRequest
from websockets.http11 import Response as HandshakeResponse

from app.auth.tokens import AuthError, StaticKey, TokenVerifier
from app.config import load_settings
from app.live.protocol import CloseCode
from bench.world import EVENTS_KEY

CHANNEL = "bench-raw-broadcast"
EPOCH = secrets.token_hex(8)  # one per process: the snapshot names it, as the service's does


class _Event(msgspec.Struct, rename="camel"):
    account_id: str
    session_id: str
    session: dict[str, msgspec.Raw] = {}


class _Events(msgspec.Struct):
    events: list[_Event]


class _Op(msgspec.Struct):
    op: str
    path: str
    value: msgspec.Raw


class _Patch(msgspec.Struct, tag_field="type", tag="patch"):
    cursor: int
    ops: list[_Op]


class _Snapshot(msgspec.Struct, tag_field="type", tag="snapshot"):
    epoch: str
    cursor: int
    sessions: dict[str, str]


_decode = msgspec.json.Decoder(_Events).decode
_encode = msgspec.json.Encoder().encode


class Rooms:
    """Each account's open sockets and cursor (its events so far)."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier
        self.sockets: dict[str, set[ServerConnection]] = {}
        self.cursor: dict[str, int] = {}

    def publish(self, body: bytes) -> None:
        """One publication (an events body): per event, its frame, encoded once, to every socket of
        its account."""
        for event in _decode(body).events:
            cursor = self.cursor[event.account_id] = self.cursor.get(event.account_id, 0) + 1
            room = self.sockets.get(event.account_id)
            if room:
                ops = [_Op("replace", f"/{event.session_id}/{name}", value) for name, value in event.session.items()]
                broadcast(room, _encode(_Patch(cursor, ops)), text=True)

    async def serve(self, connection: ServerConnection) -> None:
        """Verify the token, send the snapshot, then hold the socket in its account's room until it
        closes (the fleet sends nothing to it)."""
        try:
            token = connection.request.headers.get("Authorization", "") if connection.request else ""
            principal = self.verifier.verify(token.removeprefix("Bearer "))
        except AuthError as exc:
            await connection.close(CloseCode.UNAUTHORIZED, exc.message)
            return
        if not principal.sees_whole_account:
            await connection.close(CloseCode.FORBIDDEN, "whole-account viewers only")
            return
        account = principal.account_id
        await connection.send(_encode(_Snapshot(EPOCH, self.cursor.get(account, 0), {})), text=True)
        room = self.sockets.setdefault(account, set())
        room.add(connection)
        try:
            await connection.wait_closed()
        finally:
            room.discard(connection)


def _health(connection: ServerConnection, request: HandshakeRequest) -> HandshakeResponse | None:
    """`GET /health/live` answers before any handshake (the bench waits for it)."""
    return connection.respond(HTTPStatus.OK, "ok\n") if request.path == "/health/live" else None


async def _relay(pubsub: PubSub, rooms: Rooms) -> None:
    async for message in pubsub.listen():
        rooms.publish(message["data"])


async def main() -> None:
    settings = load_settings({"APP_ENV": "test"})
    rooms = Rooms(TokenVerifier(StaticKey(settings.jwt_verify_key(), settings.jwt_algorithm)))
    pubsub = aioredis.Redis.from_url(os.environ["REDIS_URL"]).pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(CHANNEL)  # before the socket listens: the bench's health check means ready
    async with serve(rooms.serve, os.environ["HOST"], int(os.environ["PORT"]), compression=None,
                     process_request=_health) as server:
        relay = asyncio.create_task(_relay(pubsub, rooms))
        try:
            await server.serve_forever()
        finally:
            relay.cancel()


def app() -> Starlette:
    """The ingest: each events body, as it came, on the channel."""
    publisher = aioredis.Redis.from_url(os.environ["REDIS_URL"])

    async def events(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {EVENTS_KEY}":
            return Response(status_code=401)
        await publisher.publish(CHANNEL, await request.body())
        return Response(b'{"published":true}', media_type="application/json")

    async def live(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return Starlette(routes=[Route("/events", events, methods=["POST"]), Route("/health/live", live)])


if __name__ == "__main__":
    uvloop.run(main())
