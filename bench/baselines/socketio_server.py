"""What users would pick instead: python-socketio with AsyncRedisManager, doing the same job
as the service's live push, the way its documentation suggests.

- Clients connect with the same JWT (auth payload); a manager joins the account's room, a user
  their endpoint's room; on connect the room's state (JSON per session, in Redis) is emitted.
- `POST /events` takes the service's events body; each event is a read-modify-write of the
  session's JSON in Redis, then the whole session is emitted to the rooms that see it. Emits
  reach every process through Redis pub/sub (one global channel, as AsyncRedisManager does).
- On a Redis Cluster: the same, each key sent to its slot's master (see `_sessions`)."""

from __future__ import annotations

import json
import os

import socketio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.auth.tokens import AuthError, StaticKey, TokenVerifier
from app.config import load_settings
from bench.baselines.redis_client import Router

EVENTS_KEY = "Bearer test-events-key"


# Keys carry the account as a hash tag, so one event's MULTI (its session and its rooms' states)
# stays in one slot on a Redis Cluster; on one node the tag changes nothing.
def _sessions(account: str) -> str:
    return f"sio:{{{account}}}:sessions"


def _room_state(room: str) -> str:
    account, rest = room.split(":", 1)
    return f"sio:{{{account}}}:{rest}:state"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def app() -> socketio.ASGIApp:
    url = os.environ["REDIS_URL"]
    settings = load_settings({"APP_ENV": "test"})
    verifier = TokenVerifier(StaticKey(settings.jwt_verify_key(), settings.jwt_algorithm))
    mgr = socketio.AsyncRedisManager(url, channel="bench-socketio")
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=mgr, cors_allowed_origins="*")
    # Its own reads and writes queue for a pooled connection instead of failing under a burst
    # (redis-py's default pool raises "Too many connections" past 100). On a Redis Cluster
    # each key goes to its slot's master (bench/baselines/redis_client.py); AsyncRedisManager
    # keeps classic pub/sub on the node REDIS_URL names (a cluster forwards PUBLISH to every
    # node), as it would be deployed.
    r = Router(url, max_connections=100)

    @sio.event
    async def connect(sid: str, environ: dict, auth: dict | None) -> None:  # type: ignore[type-arg]
        try:
            principal = verifier.verify((auth or {}).get("token"))
        except AuthError as exc:
            raise socketio.exceptions.ConnectionRefusedError(exc.message) from None
        if principal.sees_whole_account:
            room = f"{principal.account_id}:*"
        else:
            room = f"{principal.account_id}:{principal.endpoint_id}"
        await sio.enter_room(sid, room)
        state = await r(_room_state(room)).hgetall(_room_state(room))
        await sio.emit("state", {_text(k): json.loads(v) for k, v in state.items()}, to=sid)

    async def events(request: Request) -> Response:
        if request.headers.get("authorization") != EVENTS_KEY:
            return Response(status_code=401)
        body = json.loads(await request.body())
        for event in body["events"]:
            account, sid = event["accountId"], event["sessionId"]
            raw = await r(_sessions(account)).hget(_sessions(account), sid)
            session = json.loads(raw) if raw else {"id": sid, "accountId": account}
            if event["type"] == "session.upsert":
                session.update(event.get("session") or {})
            elif event["type"] == "session.end":
                session.update(ended=True, callState="Disconnected")
            text = json.dumps(session)
            rooms = [f"{account}:*"] + ([f"{account}:{session['endpointId']}"] if session.get("endpointId") else [])
            async with r(_sessions(account)).pipeline(transaction=True) as pipe:  # one slot
                pipe.hset(_sessions(account), sid, text)
                for room in rooms:
                    pipe.hset(_room_state(room), sid, text)
                await pipe.execute()
            for room in rooms:
                await sio.emit("patch", {"sessionId": sid, "session": session}, room=room)
        return JSONResponse({"applied": len(body["events"])})

    async def live(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    web = Starlette(routes=[Route("/events", events, methods=["POST"]), Route("/health/live", live)])
    return socketio.ASGIApp(sio, other_asgi_app=web)
