"""Log output: plain text or one JSON object per line (`LOG_FORMAT=json`), with the
request's id, route and account; secrets are scrubbed from every line either way.

Every request writes an access line, so the line's cost is part of every request's cost
(measured with the line formatted and written to a file: 34.8 µs per `log.info` as CPython
sets logging up, 13 µs with what `configure_logging` turns off, 3 to 4 times less again as an
`AccessLog` line): records carry no caller, thread or process fields (nothing here prints
them), the lines of one event-loop turn leave in one write (`TurnFlushingHandler`), and the
access line is formatted from its parts without a `LogRecord` (`AccessLog`)."""

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
        exception = self.formatException(record.exc_info) if record.exc_info else None
        return self.line(record.created, record.levelname, record.name, record.getMessage(),
                         getattr(record, "status", None), getattr(record, "duration_ms", None), exception)

    def line(self, created: float, level: str, logger: str, message: str, status: int | None = None,
             duration_ms: float | None = None, exception: str | None = None) -> str:
        """One log line from its parts (a record's, or an access line's: `AccessLog`)."""
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": level,
            "logger": logger,
            "message": self._redact(message),
        }
        ctx = current()
        if ctx is not None:
            line.update(request_id=ctx.request_id, route=ctx.route, account=ctx.account)
        if status is not None:
            line["status"] = status
        if duration_ms is not None:
            line["duration_ms"] = duration_ms
        if exception:
            line["exception"] = self._redact(exception)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self._redact = redact
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        return self._asctime(record.created)

    def _asctime(self, created: float) -> str:
        """What `logging.Formatter` prints by default (`2026-12-03 10:00:00,123`), the
        seconds part formatted once per second instead of once per line."""
        second = int(created)
        if second != self._second:
            self._second, self._stamp = second, time.strftime(self.default_time_format, self.converter(second))
        return f"{self._stamp},{int((created - second) * 1000):03d}"  # logging's default_msec_format

    def format(self, record: logging.LogRecord) -> str:
        return self._finish(super().format(record), getattr(record, "status", None))

    def line(self, created: float, level: str, logger: str, message: str, status: int | None = None,
             duration_ms: float | None = None) -> str:
        """One log line from its parts, as `format` prints a record without an exception."""
        return self._finish(f"{self._asctime(created)} {level} {logger} {message}", status)

    def _finish(self, text: str, status: int | None) -> str:
        ctx = current()
        if ctx is not None:
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

    def write_line(self, text: str) -> None:
        """A line formatted elsewhere (`AccessLog`), written as `emit` writes a record's."""
        try:
            with self.lock:  # type: ignore[union-attr]
                self.stream.write(text + self.terminator)
            self.flush()
        except Exception:  # noqa: BLE001 - as `emit`: a failed log write never fails the request
            self.handleError(logging.makeLogRecord({"msg": text}))


class AccessLog:
    """Every HTTP request's access line (`app.access`, INFO; app.observability.access). With
    the handler `configure_logging` installed (the only one: it replaces the root's), the
    line is formatted by its formatter from its parts and written by it, without a
    `LogRecord` and the logging machinery around one: 3 instead of 13 µs per request, the
    largest single part of a cached read (`python -m bench.inprocess read --profile`). Before
    `configure_logging` (tests that build apps, embedding) it is a plain `log.info` record."""

    def __init__(self) -> None:
        self._log = logging.getLogger("app.access")
        self._handler: TurnFlushingHandler | None = None
        self._formatter: JsonFormatter | TextFormatter | None = None

    def install(self, handler: TurnFlushingHandler, formatter: JsonFormatter | TextFormatter) -> None:
        self._handler, self._formatter = handler, formatter

    def write(self, method: str, path: str, status: int | None, duration_ms: float) -> None:
        if not self._log.isEnabledFor(logging.INFO):
            return
        handler, formatter = self._handler, self._formatter
        if handler is None or formatter is None:
            self._log.info("%s %s", method, path, extra={"status": status, "duration_ms": duration_ms})
            return
        handler.write_line(formatter.line(time.time(), "INFO", "app.access", f"{method} {path}", status, duration_ms))


ACCESS = AccessLog()


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
    """One stderr handler on the root logger; uvicorn's loggers write through it, except its
    access logger (the service writes its own access line).

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
    formatter = JsonFormatter(redact) if settings.log_format == "json" else TextFormatter(redact)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    ACCESS.install(handler, formatter)
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # The service writes its own access line (`app.access`: request id, status, duration).
    # uvicorn's HTTP protocol writes one too whenever "uvicorn.access" has a handler, even under
    # `--no-access-log` (that only empties the logger, which propagation had refilled): two lines
    # per request, the second one costing a LogRecord each.
    quiet = logging.getLogger("uvicorn.access")
    quiet.handlers.clear()
    quiet.propagate = False
