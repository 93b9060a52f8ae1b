"""What `configure_logging` changes about log records and their output (app/observability/logs.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from app.observability.context import RequestContext, enter, leave
from app.observability.logs import AccessLog, JsonFormatter, Redactor, TextFormatter, TurnFlushingHandler, _buffered


def test_the_switches_configure_logging_turns_off_still_exist() -> None:
    """The logging HOWTO's "Optimization" switches: an upgrade that drops one fails here."""
    for name in ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing"):
        assert hasattr(logging, name), name


def test_the_text_time_stamp_is_what_logging_prints() -> None:
    ours, stock = TextFormatter(Redactor([])), logging.Formatter()
    for created in (time.time(), 1_700_000_000.0, 1_700_000_000.999, 1_700_000_001.0005):
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
        record.created, record.msecs = created, (created - int(created)) * 1000
        assert ours.formatTime(record) == stock.formatTime(record)


def test_redaction_finds_bearer_credentials_in_any_case_and_configured_secrets() -> None:
    redact = Redactor(["s3cret-value"])
    line = redact("BeArEr abc.def and bearer   xyz and s3cret-value and eyJa.eyJb.c")
    for secret in ("abc.def", "xyz", "s3cret-value", "eyJa.eyJb.c"):
        assert secret not in line
    assert redact("GET /sessions/active 200") == "GET /sessions/active 200"


async def test_lines_of_one_loop_turn_leave_together_at_its_end(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    with path.open("w") as raw:
        handler = TurnFlushingHandler(_buffered(raw))
        handler.setFormatter(logging.Formatter("%(message)s"))
        for i in range(3):
            handler.handle(logging.LogRecord("x", logging.INFO, __file__, 1, f"line {i}", None, None))
        assert path.read_text() == ""  # written into the buffer, not yet out
        await asyncio.sleep(0)  # the turn ends
        assert path.read_text() == "line 0\nline 1\nline 2\n"


def test_off_the_loop_every_line_leaves_at_once(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    with path.open("w") as raw:
        handler = TurnFlushingHandler(_buffered(raw))
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.handle(logging.LogRecord("x", logging.INFO, __file__, 1, "at once", None, None))
        assert path.read_text() == "at once\n"


def _access_record(created: float) -> logging.LogRecord:
    record = logging.LogRecord("app.access", logging.INFO, __file__, 1, "%s %s", ("GET", "/x/s3cret-value"), None)
    record.created, record.msecs = created, int((created - int(created)) * 1000) + 0.0
    record.status, record.duration_ms = 200, 1.25
    return record


@pytest.mark.parametrize("formatter", [JsonFormatter(Redactor(["s3cret-value"])),
                                       TextFormatter(Redactor(["s3cret-value"]))])
def test_an_access_line_is_what_its_record_would_print(formatter: JsonFormatter | TextFormatter) -> None:
    reset = enter(RequestContext("rid-9", "/sessions/active", account="A1"))
    try:
        for created in (1_700_000_000.123, time.time()):
            line = formatter.line(created, "INFO", "app.access", "GET /x/s3cret-value", 200, 1.25)
            assert line == formatter.format(_access_record(created))
            assert "s3cret-value" not in line and "rid-9" in line
    finally:
        leave(reset)


async def test_access_lines_leave_through_the_installed_handler(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    formatter = TextFormatter(Redactor([]))
    with path.open("w") as raw:
        handler = TurnFlushingHandler(_buffered(raw))
        handler.setFormatter(formatter)
        access = AccessLog()
        access.install(handler, formatter)
        logger = logging.getLogger("app.access")
        level = logger.level
        logger.setLevel(logging.WARNING)
        access.write("GET", "/not-logged", 200, 0.5)  # below the level: nothing
        logger.setLevel(logging.INFO)
        try:
            access.write("GET", "/sessions/active", 200, 0.5)
            access.write("POST", "/twilio/status", 204, 1.5)
        finally:
            logger.setLevel(level)
        await asyncio.sleep(0)
        lines = path.read_text().splitlines()
    assert [line.split(" ", 3)[2:] for line in lines] == [["INFO", "app.access GET /sessions/active"],
                                                          ["INFO", "app.access POST /twilio/status"]]


def test_a_failed_access_write_never_fails_the_request() -> None:
    import io

    stream = io.StringIO()
    handler = TurnFlushingHandler(stream)
    stream.close()  # writes now raise ValueError
    handler.write_line("GET /sessions/active")  # reported as logging reports a failed emit, not raised
