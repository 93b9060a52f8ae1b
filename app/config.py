"""Typed settings, read once at start-up and injected. In order, later wins:
the packaged defaults (`app/defaults/default.toml`, then `app/defaults/<env>.toml`),
the deployment's overrides (`<CONFIG_DIR>/default.toml`, `<CONFIG_DIR>/<env>.toml`;
CONFIG_DIR is `./config` unless set), the environment (upper-case names), then what a
command passes in (`python -m app serve --port`; `load_settings(overrides=...)`). Nothing
writes the environment to pass settings on."""

from __future__ import annotations

import base64
import os
import tomllib
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

import msgspec

from app.config_rules import parse_origins, parse_token_map

DEFAULTS_DIR = Path(__file__).resolve().parent / "defaults"  # inside the package (the wheel too)
CONFIG_DIR = Path("config")  # the deployment's overrides, relative to the working directory


GC_POLICIES = ("freeze", "default")
SERVERS = ("uvicorn", "granian")  # what `python -m app serve` runs the app under (app.__main__)
UVICORN_WS_NAMES = ("websockets-sansio", "websockets", "wsproto", "auto", "none")  # uvicorn's own


class ConfigError(Exception):
    """The settings cannot run the service; the message says what to set."""


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    env: str = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    redis_url: str = ""  # one node, or any node of a Redis Cluster (discovered)
    redis_max_connections: int = 256  # per Redis node
    redis_sentinels: str = ""  # "host:port,host:port": find (and follow) the primary through Sentinel
    redis_sentinel_master: str = "mymaster"  # the master name Sentinel watches
    redis_socket_timeout: float = 10.0  # seconds; a Redis reply slower than this fails the batch (0: none)
    redis_retry_seconds: float = 2.0  # cluster: how long a batch waits for its slot's master to come back
    redis_wait_replicas: int = 0  # > 0: a write is answered only once this many replicas have it (WAIT)
    redis_wait_timeout_ms: int = 1000  # ... within this time, else 503 (the sender retries)
    jwt_algorithm: str = "HS256"
    jwt_secret: str = ""
    jwt_secret_base64: str = ""
    jwt_public_key: str = ""
    # An identity provider's keys (RS256/ES256) instead of the static key above.
    jwt_jwks_url: str = ""
    jwt_jwks_cooldown_seconds: float = 30.0  # at most one fetch per this, however many unknown kids
    jwt_jwks_max_age_seconds: float = 600.0  # known keys re-fetched in the background after this
    jwt_issuer: str = ""  # when set, tokens must carry this `iss`
    jwt_audience: str = ""  # when set, tokens must carry this `aud`
    events_api_key: str = ""
    max_body_bytes: int = 1_048_576
    max_events_per_batch: int = 500
    change_log_max_len: int = 10_000
    ended_ttl_seconds: int = 604_800
    dedupe_ttl_seconds: int = 604_800
    # Twilio (webhooks): the public base URL Twilio calls, and auth tokens.
    public_url: str = ""
    twilio_auth_token: str = ""
    twilio_auth_token_secondary: str = ""
    # JSON object {"AC...": "token"} or {"AC...": ["token", "next-token"]}.
    twilio_auth_tokens: str = ""
    dead_letter_max_len: int = 1000
    # The sweep (app/sweep/, docs/twilio.md): sessions that heard nothing for too long are checked
    # with Twilio's REST API (`twilio_api_url`, empty: no REST API, such sessions are marked stale).
    sweep_interval_seconds: float = 30.0  # how often each process looks for accounts to sweep (0: never)
    sweep_ringing_after_seconds: float = 180.0  # a queued/initiated/ringing leg heard nothing for this long
    sweep_in_progress_max_seconds: float = 14_700.0  # an answered leg (Twilio's default time limit is 4 h)
    sweep_recheck_seconds: float = 300.0  # a session asked about is not asked about again before this
    sweep_lease_seconds: float = 90.0  # an account's sweeper lease; another process takes over after it
    sweep_fetch_timeout: float = 10.0  # one REST request to Twilio
    twilio_api_url: str = "https://api.twilio.com"
    # Live push (/sessions/live WebSocket and SSE, /sessions/changes long-poll).
    live_ping_interval: float = 25.0  # seconds between server pings
    live_pong_timeout: float = 10.0  # close (3012) when a ping is not answered in time
    live_auth_timeout: float = 5.0  # close (3502) without an auth message by then
    live_token_grace: float = 10.0  # close (3005) this long after the token expires
    live_queue_max_bytes: int = 1_048_576  # per-connection send queue; past it: conflate (docs/protocol.md)
    live_write_timeout: float = 10.0  # one blocked socket write longer than this: close (3008)
    live_max_message_bytes: int = 65_536  # inbound message size limit (uvicorn closes with 1009 first; 3504 here)
    live_replay_max_changes: int = 5_000  # resume scans at most this many changes, else reset
    live_position_check_seconds: float = 30.0  # compare relayed position with the store
    # An account's feed left without subscribers keeps following it this long (0: stops at once), so
    # that a reconnect storm resumes from what it relayed, with no read (docs/architecture.md).
    live_feed_linger_seconds: float = 5.0
    live_poll_max_wait: float = 60.0  # cap on /sessions/changes?wait=
    live_drain_spread_ms: int = 5_000  # SIGTERM: reconnect delay hints spread over this
    live_drain_timeout: float = 3.0  # SIGTERM: wait this long for clients to go
    # Agent presence (docs/protocol.md "Presence"): a live connection's lease runs this long past its
    # last renewal; every interval each process renews its own and sweeps expired ones. A leave is
    # published within lease + interval of a connection's end, its process killed included.
    presence_lease_seconds: float = 10.0
    presence_interval_seconds: float = 2.0
    presence_leave_grace_seconds: float = 5.0  # an ended connection stays present this long for a reconnect
    # State digests (docs/protocol.md "State digest"): on every snapshot and ping, and on every
    # this-many-th patch to a connection; 0 turns them off (and the view read a resume makes for one).
    live_digest_every: int = 50
    live_socket_send_buffer: int = 131_072  # SO_SNDBUF asked per live WebSocket (Linux doubles it); 0: autotuned
    live_conflate_lag_ms: int = 2000  # an acknowledging client this far behind is conflated (0: never)
    # Operations (docs/operations.md).
    log_format: str = "text"  # or "json": one object per line
    log_level: str = "info"
    metrics_token: str = ""  # when set, GET /metrics needs Authorization: Bearer <it>
    # Browser origins besides the service's own that may use it (comma-separated): cookie
    # credentials from them are accepted, and the client module, SSE and long-poll answer CORS.
    allowed_origins: str = ""
    # The ASGI server under `python -m app serve`: uvicorn (the Procfile's), or granian (app.granian_server:
    # measured against it, `python -m bench --server uvicorn,granian`; what differs: docs/operations.md).
    server: str = "uvicorn"
    # uvicorn's WebSocket implementation under `python -m app serve` (the Procfile passes `--ws`):
    # the service's (app.live.uvicorn_ws); `websockets-sansio`, the stock one, is for comparisons.
    uvicorn_ws: str = "app.live.uvicorn_ws:LiveWebSocketProtocol"
    # Python's cyclic GC in a serving process (app.gc_policy, docs/operations.md): `freeze` keeps what
    # survives a full collection out of the next ones (no whole-heap pause per quarter of promotions);
    # `default`: CPython's own, for comparisons.
    gc_policy: str = "freeze"

    @property
    def production(self) -> bool:
        return self.env == "production"

    def jwt_verify_key(self) -> str | bytes:
        if self.jwt_algorithm.startswith("RS"):
            return self.jwt_public_key
        if self.jwt_secret_base64:
            return base64.b64decode(self.jwt_secret_base64)
        return self.jwt_secret.encode()

    def validate(self) -> "Settings":
        if self.jwt_algorithm not in ("HS256", "RS256"):
            raise ConfigError(f"JWT_ALGORITHM must be HS256 or RS256, not {self.jwt_algorithm!r}")
        if self.jwt_algorithm == "RS256" and not self.jwt_public_key:
            raise ConfigError("JWT_ALGORITHM=RS256 needs JWT_PUBLIC_KEY (PEM)")
        if self.jwt_jwks_url:
            _check_jwks_url(self.jwt_jwks_url, self.production)
        elif self.jwt_algorithm == "HS256" and not (self.jwt_secret or self.jwt_secret_base64):
            raise ConfigError("no JWT key: set JWT_SECRET or JWT_SECRET_BASE64")
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"LOG_FORMAT must be text or json, not {self.log_format!r}")
        if not self.events_api_key:
            raise ConfigError("no events API key: set EVENTS_API_KEY")
        if self.production and not (self.redis_url or self.redis_sentinels):
            raise ConfigError("production needs a shared Redis: set REDIS_URL (or REDIS_SENTINELS)")
        if self.redis_wait_replicas < 0 or self.redis_wait_timeout_ms <= 0:
            raise ConfigError("REDIS_WAIT_REPLICAS must be >= 0 and REDIS_WAIT_TIMEOUT_MS > 0")
        if self.presence_leave_grace_seconds < 0:
            raise ConfigError(f"PRESENCE_LEAVE_GRACE_SECONDS must be >= 0, not {self.presence_leave_grace_seconds}")
        if not 0 < 2 * self.presence_interval_seconds <= self.presence_lease_seconds:
            raise ConfigError("PRESENCE_INTERVAL_SECONDS must be > 0 and at most half of PRESENCE_LEASE_SECONDS "
                              "(a lease must outlive a missed renewal)")
        if self.live_socket_send_buffer < 0:
            raise ConfigError(f"LIVE_SOCKET_SEND_BUFFER must be >= 0 (0: the kernel's), not {self.live_socket_send_buffer}")
        if self.live_conflate_lag_ms < 0:
            raise ConfigError(f"LIVE_CONFLATE_LAG_MS must be >= 0 (0: acks never conflate), not {self.live_conflate_lag_ms}")
        if self.live_feed_linger_seconds < 0:
            raise ConfigError(f"LIVE_FEED_LINGER_SECONDS must be >= 0, not {self.live_feed_linger_seconds}")
        if self.live_digest_every < 0:
            raise ConfigError(f"LIVE_DIGEST_EVERY must be >= 0 (0: no digests), not {self.live_digest_every}")
        if self.gc_policy not in GC_POLICIES:
            raise ConfigError(f"GC_POLICY must be one of {', '.join(GC_POLICIES)}, not {self.gc_policy!r}")
        if self.server not in SERVERS:
            raise ConfigError(f"SERVER must be one of {', '.join(SERVERS)}, not {self.server!r}")
        if self.uvicorn_ws not in UVICORN_WS_NAMES and ":" not in self.uvicorn_ws:
            raise ConfigError(f"UVICORN_WS must be one of {', '.join(UVICORN_WS_NAMES)} or module:Class, "
                              f"not {self.uvicorn_ws!r}")
        if self.allowed_origins:
            try:
                parse_origins(self.allowed_origins)
            except ValueError as exc:
                raise ConfigError(f"ALLOWED_ORIGINS: {exc}") from None
        _check_sweep(self)
        if self.twilio_auth_tokens:
            try:
                parse_token_map(self.twilio_auth_tokens)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        return self


def _check_jwks_url(url: str, production: bool) -> None:
    scheme = urlsplit(url).scheme
    if scheme not in ("https", "http") or not urlsplit(url).hostname:
        raise ConfigError(f"JWT_JWKS_URL must be an http(s) URL, not {url!r}")
    if production and scheme != "https":
        raise ConfigError("JWT_JWKS_URL must use https in production")


def _check_sweep(s: Settings) -> None:
    if s.sweep_interval_seconds < 0:
        raise ConfigError("SWEEP_INTERVAL_SECONDS must be >= 0 (0: no sweep)")
    for name in ("sweep_ringing_after_seconds", "sweep_in_progress_max_seconds", "sweep_recheck_seconds",
                 "sweep_fetch_timeout"):
        if getattr(s, name) <= 0:
            raise ConfigError(f"{name.upper()} must be > 0")
    if s.sweep_interval_seconds and s.sweep_lease_seconds <= s.sweep_interval_seconds:
        raise ConfigError("SWEEP_LEASE_SECONDS must be longer than SWEEP_INTERVAL_SECONDS (the lease is renewed "
                          "once a pass)")
    if s.twilio_api_url:
        url = urlsplit(s.twilio_api_url)
        if url.scheme not in ("https", "http") or not url.hostname:
            raise ConfigError(f"TWILIO_API_URL must be an http(s) URL or empty, not {s.twilio_api_url!r}")


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    with path.open("rb") as f:
        return tomllib.load(f)


def load_settings(
    environ: Mapping[str, str] | None = None, config_dir: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge the packaged defaults, the override files, the environment and then `overrides`
    (field names: what a command line says, e.g. `{"port": 9000}`); fail clearly if unusable."""
    environ = os.environ if environ is None else environ
    deployment = config_dir or Path(environ.get("CONFIG_DIR") or CONFIG_DIR)
    values = {**_read_toml(DEFAULTS_DIR / "default.toml"), **_read_toml(deployment / "default.toml")}
    env = environ.get("APP_ENV") or values.get("env", "development")
    values.update(_read_toml(DEFAULTS_DIR / f"{env}.toml"))
    values.update(_read_toml(deployment / f"{env}.toml"))
    values["env"] = env
    for name in Settings.__struct_fields__:
        raw = environ.get(name.upper())
        if raw is not None:
            values[name] = raw
    values.update(overrides or {})
    try:
        settings = msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"bad setting: {exc}") from None
    return settings.validate()
