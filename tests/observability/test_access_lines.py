"""One access line per request from a real serving process, however it is launched.

uvicorn's HTTP protocol writes its own access line whenever the "uvicorn.access" logger has a
handler; `--no-access-log` only empties that logger, and the service's logging set-up used to
make it propagate to the root handler again, so every request was logged twice."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ServiceProcess, wait_until

ROOT = Path(__file__).resolve().parents[2]


def procfile_command() -> list[str]:
    """The Procfile's web command as a shell would run it, with this interpreter's uvicorn
    (`exec env`: the shell expands the line and becomes the server, so stopping it stops it)."""
    line = next(x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith("web:"))
    command = line.removeprefix("web:").strip().replace(" uvicorn ", f" {shlex.quote(sys.executable)} -m uvicorn ", 1)
    return ["sh", "-c", f"exec env {command}"]


class LoggingService(ServiceProcess):
    """The service at its default log level (INFO), launched by `command`."""

    def __init__(self, redis_url: str, command: list[str]) -> None:
        self._start(command, "service-logging", {"APP_ENV": "test", "REDIS_URL": redis_url,
                                                 "LOG_LEVEL": "info"})


@pytest.fixture(params=["python -m app serve", "Procfile"])
def logging_service(request: pytest.FixtureRequest, clean_redis: str) -> Iterator[LoggingService]:
    command = [sys.executable, "-m", "app", "serve"] if request.param != "Procfile" else procfile_command()
    proc = LoggingService(clean_redis, command)
    yield proc
    proc.stop()


def test_each_request_is_logged_once(logging_service: LoggingService) -> None:
    for _ in range(3):
        assert httpx.get(logging_service.url + "/sessions/active").status_code == 401
    wait_until(lambda: logging_service.output().count("app.access GET /sessions/active") == 3, 10,
               "three access lines")
    output = logging_service.output()
    assert "uvicorn.access" not in output
    assert output.count("GET /sessions/active") == 3
