"""Log output: plain text or one JSON object per line (`LOG_FORMAT=json`), with the
request's id, route and account; secrets are scrubbed from every line either way.

Every request writes an access line, so the line's cost is part of every request's cost
(measured with the line formatted and written to a file: 34.8 µs per `log.info` as CPython
sets logging up, 18.5 µs with what `configure_logging` turns off): the records carry no
caller, thread or process fields (nothing here prints them), and the lines of one event-loop
turn leave in one write (`TurnFlushingHandler`)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO

from app.config import Settings
from app.config_rules import parse_token_map
from app.observability.context import current

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)(bearer\s+)\S+")
_MIN_SECRET = 6


class Redactor:
    """Replaces configured secrets, bearer credentials and anything JWT-shaped."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._values = sorted({s for s in secrets if len(s) >= _MIN_SECRET}, key=len, reverse=True)
        self._secrets = re.compile("|".join(map(re.escape, self._values))) if self._values else None

    def __call__(self, text: str) -> str:
        # Substring tests first: most lines hold no secret, and `in` is cheaper than a regex pass.
        if self._secrets is not None and any(value in text for value in self._values):
            text = self._secrets.sub("[redacted]", text)
        if "eyJ" in text:
            text = _JWT.sub("[redacted-jwt]", text)
        return _BEARER.sub(r"\1[redacted]", text) if "bearer" in text.lower() else text


def secrets_of(settings: Settings) -> list[str]:
    values = [settings.jwt_secret, settings.jwt_secret_base64, settings.events_api_key, settings.metrics_token,
              settings.twilio_auth_token, settings.twilio_auth_token_secondary]
    if settings.twilio_auth_tokens:
        for tokens in parse_token_map(settings.twilio_auth_tokens).values():
            values.extend(tokens)
    return values


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": self._redact(record.getMessage()),
        }
        ctx = current()
        if ctx is not None:
            line.update(request_id=ctx.request_id, route=ctx.route, account=ctx.account)
        for name in ("status", "duration_ms"):
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self._redact(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self._redact = redact
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        """What `logging.Formatter` prints by default (`2026-12-03 10:00:00,123`), the
        seconds part formatted once per second instead of once per line."""
        second = int(record.created)
        if second != self._second:
            self._second, self._stamp = second, time.strftime(self.default_time_format, self.converter(second))
        return f"{self._stamp},{int(record.msecs):03d}"  # logging's default_msec_format

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ctx = current()
        if ctx is not None:
            status = getattr(record, "status", None)
            text += f" [request_id={ctx.request_id}" + (f" status={status}]" if status is not None else "]")
        return self._redact(text)


class TurnFlushingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler whose lines leave once per event-loop turn: `emit` writes each line
    into the stream's buffer and, on the event loop's thread, the flush waits for the end of
    the turn, so a turn that served many requests makes one write. Off the loop (start-up,
    shutdown, other threads) every line is flushed at once; `logging.shutdown` flushes what
    is left at exit."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._scheduled = False

    def flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            super().flush()
            return
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush_turn)

    def _flush_turn(self) -> None:
        self._scheduled = False
        super().flush()


def _buffered(stream: TextIO) -> TextIO:
    """`stream`'s file descriptor behind a block buffer (a non-interactive stderr is line
    buffered: a write per line); `stream` itself when it has no descriptor (a capture)."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):
        return stream
    encoding = getattr(stream, "encoding", None) or "utf-8"
    return open(fd, "w", buffering=1 << 16, encoding=encoding, errors="backslashreplace",  # noqa: SIM115
                closefd=False)


def configure_logging(settings: Settings) -> None:
    """One stderr handler on the root logger; uvicorn's loggers write through it.

    Records skip what no formatter here prints: the caller's frame (`logging._srcfile`,
    the switch the logging HOWTO's "Optimization" section gives; 10 µs per line), thread,
    process, multiprocessing and task names (tests/observability/test_logs.py checks the switches
    still exist)."""
    logging._srcfile = None  # noqa: SLF001 - documented in the logging HOWTO
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if sys.version_info >= (3, 12):
        logging.logAsyncioTasks = False
    redact = Redactor(secrets_of(settings))
    handler = TurnFlushingHandler(_buffered(sys.stderr))
    handler.setFormatter(JsonFormatter(redact) if settings.log_format == "json" else TextFormatter(redact))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
