"""Command line: `python -m app serve | token | ...`."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Literal, TypedDict, cast

from app.config import SERVERS, ConfigError, Settings, load_settings


def cmd_serve(args: argparse.Namespace) -> int:
    given = {"host": args.host, "port": args.port, "server": args.server}
    # The environment and the arguments; fails fast, before the server starts, on bad settings.
    settings = load_settings(overrides={k: v for k, v in given.items() if v is not None})
    store = settings.redis_url or "embedded in-process store (no REDIS_URL)"
    if settings.log_format == "text":  # JSON logs: every line on the output is a log object
        print(f"serving on http://{settings.host}:{settings.port}  store: {store}  env: {settings.env}  "
              f"server: {settings.server}", flush=True)
    if settings.server == "granian":
        if (args.workers or 1) > 1:
            raise ConfigError("SERVER=granian runs one process (--workers is uvicorn's)")
        try:
            from app.granian_server import serve
        except ModuleNotFoundError as exc:  # granian is in the test and bench extras, not a dependency
            raise ConfigError(f"SERVER=granian needs {exc.name} installed: pip install 'granian>=2.8,<2.9'") from None
        return serve(settings, args.log_level)
    import uvicorn

    from app.composition import serving

    workers = (args.workers or 1) if settings.redis_url else 1
    # Worker processes import the app by name, as the Procfile does, and read the same
    # environment; the arguments (host, port) only bind the socket, which the parent does.
    app = "app.composition:app" if workers > 1 else serving(settings)
    uvicorn.run(
        app, factory=True, host=settings.host, port=settings.port, workers=workers, log_level=args.log_level,
        timeout_graceful_shutdown=10, access_log=False, **websocket_options(settings),
    )
    return 0


class WebSocketOptions(TypedDict):
    ws: Literal["auto", "none", "websockets", "websockets-sansio", "wsproto"]
    ws_max_size: int
    ws_max_queue: int
    ws_ping_interval: float
    ws_per_message_deflate: bool


def websocket_options(settings: Settings) -> WebSocketOptions:
    """uvicorn's WebSocket settings for /sessions/live; the Procfile passes the same as flags.

    - `websockets-sansio`: no task per connection of its own (keepalive is a loop timer), and a
      write that has room never suspends, which the live pump relies on to write without tasks.
      Run as `app.live.uvicorn_ws:LiveWebSocketProtocol`, which drops what uvicorn and websockets
      would keep for the socket's life and never read again (the upgrade request and its headers,
      the 101 response, an instance dict: 21.2 KiB per idle socket with the stock class, 10.4 with
      it and the app's own cuts; bench/README.md, "Issue 14: memory per idle socket").
      The `uvicorn_ws` setting (UVICORN_WS) picks another implementation
      (`websockets-sansio`: the stock one), for comparisons only.
    - `ws_max_size`: an inbound message over LIVE_MAX_MESSAGE_BYTES is refused by the frame
      parser (close 1009) before it is buffered, not after.
    - `ws_max_queue`: inbound messages held for the app; the protocol's are rare and tiny.
    - `ws_ping_interval=0` (off): the live protocol's own ping/pong already detects dead peers
      (close 3012); a second heartbeat would only cost a timer per socket. Not None, so the
      flag form in the Procfile says the same.
    - `ws_per_message_deflate=False`: compression would keep a zlib context per socket (tens
      of KiB) and compress every frame once per socket, undoing encode-once."""
    return {
        "ws": cast(Any, settings.uvicorn_ws),
        "ws_max_size": settings.live_max_message_bytes,
        "ws_max_queue": 4,
        "ws_ping_interval": 0.0,
        "ws_per_message_deflate": False,
    }


def cmd_token(args: argparse.Namespace) -> int:
    from app.auth.tokens import mint_token

    settings = load_settings()
    if settings.jwt_algorithm != "HS256":
        print("token: only HS256 keys can mint tokens here", file=sys.stderr)
        return 2
    roles = [r for r in args.roles.split(",") if r]
    print(mint_token(
        settings.jwt_verify_key(), sub=args.sub, account_id=args.account, endpoint_id=args.endpoint,
        roles=roles, name=args.name, ttl_seconds=args.ttl,
    ))
    return 0


def _plan(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from app.simulator.runner import Plan

    return Plan(rate=args.rate, speed=args.speed, calls=args.calls, duration=args.duration, flows=args.flows,
                seed=args.seed, drop_callbacks=args.drop_callbacks)


def cmd_simulate(args: argparse.Namespace) -> int:
    import asyncio

    from app.simulator.cast import build_cast
    from app.simulator.demo import local_url
    from app.simulator.runner import simulate

    settings = load_settings()
    url = (args.url or local_url(settings.host, settings.port)).rstrip("/")
    token = args.twilio_token or settings.twilio_auth_token
    if not token:
        print("simulate: no Twilio auth token to sign callbacks with: pass --twilio-token or set "
              "TWILIO_AUTH_TOKEN to the service's", file=sys.stderr)
        return 2
    print(f"simulating {args.rate:g} calls/s at {args.speed:g}x speed against {url}", file=sys.stderr, flush=True)
    try:
        progress = asyncio.run(simulate(
            url, public_url=args.public_url or settings.public_url or url, twilio_token=token,
            events_key=args.events_key or settings.events_api_key,
            cast=build_cast(args.accounts, args.agents, seed=args.seed or 1), plan=_plan(args)))
    except KeyboardInterrupt:
        return 130
    return 0 if progress.failed == 0 else 1


def cmd_demo(args: argparse.Namespace) -> int:
    import asyncio

    from app.simulator.demo import demo_settings, run

    if args.calls or args.duration:
        print("demo: runs until Ctrl-C (use `simulate` for a bounded run)", file=sys.stderr)
    try:
        asyncio.run(run(demo_settings(args.host, args.port), _plan(args)))
    except KeyboardInterrupt:
        pass
    return 0


def _traffic_options(p: argparse.ArgumentParser, rate: float, speed: float) -> None:
    p.add_argument("--rate", type=float, default=rate, help=f"new calls per second (default {rate:g})")
    p.add_argument("--speed", type=float, default=speed,
                   help=f"call time runs this many times faster than real time (default {speed:g})")
    p.add_argument("--flows", default="abcdef", help="which of the six flows (a-f) to mix (default abcdef)")
    p.add_argument("--seed", type=int, help="repeat a run exactly")
    p.add_argument("--calls", type=int, default=0, help="stop after this many calls (default: no limit)")
    p.add_argument("--duration", type=float, default=0, help="stop starting calls after this many seconds")
    p.add_argument("--drop-callbacks", type=_share, default=0.0, metavar="SHARE",
                   help="never send this share (0-1) of Twilio callbacks, as if lost, so the sweep has "
                        "stuck calls to find (e.g. 0.2)")


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a share from 0 to 1, not {value:g}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="callstate", description="Call-session state service")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP/WebSocket server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=None, help="processes (needs REDIS_URL)")
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--server", choices=SERVERS, help="the ASGI server (default: SERVER, else uvicorn)")
    serve.set_defaults(func=cmd_serve)

    token = sub.add_parser("token", help="mint a signed dev JWT")
    token.add_argument("--sub", required=True, help="user id")
    token.add_argument("--account", required=True, help="accountId claim")
    token.add_argument("--endpoint", help="endpointId claim (the user's softphone endpoint)")
    token.add_argument("--roles", default="User", help="comma-separated, e.g. User,Manager")
    token.add_argument("--name", help="display name")
    token.add_argument("--ttl", type=int, default=3600, help="seconds until exp")
    token.set_defaults(func=cmd_token)

    simulate = sub.add_parser("simulate", help="drive realistic call traffic at a running service")
    simulate.add_argument("--url", help="the service (default: http://HOST:PORT from the settings)")
    simulate.add_argument("--public-url", help="the URL the service checks Twilio signatures against "
                                               "(default: PUBLIC_URL, else --url)")
    simulate.add_argument("--twilio-token", help="Twilio auth token to sign with (default: TWILIO_AUTH_TOKEN)")
    simulate.add_argument("--events-key", help="events API key (default: EVENTS_API_KEY)")
    simulate.add_argument("--accounts", type=int, default=3, help="accounts to spread calls over (default 3)")
    simulate.add_argument("--agents", type=int, default=4, help="agents per account (default 4)")
    _traffic_options(simulate, rate=0.5, speed=1.0)
    simulate.set_defaults(func=cmd_simulate)

    demo = sub.add_parser("demo", help="the service on the embedded store with simulated calls, and the console")
    demo.add_argument("--host")
    demo.add_argument("--port", type=int)
    _traffic_options(demo, rate=0.4, speed=2.0)
    demo.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
