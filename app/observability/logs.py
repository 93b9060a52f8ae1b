"""Log output: plain text or one JSON object per line (`LOG_FORMAT=json`), with the
request's id, route and account; secrets are scrubbed from every line either way."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

from app.config import Settings
from app.config_rules import parse_token_map
from app.observability.context import current

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)(bearer\s+)\S+")
_MIN_SECRET = 6


class Redactor:
    """Replaces configured secrets, bearer credentials and anything JWT-shaped."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values = sorted({s for s in secrets if len(s) >= _MIN_SECRET}, key=len, reverse=True)
        self._secrets = re.compile("|".join(map(re.escape, values))) if values else None

    def __call__(self, text: str) -> str:
        if self._secrets is not None:
            text = self._secrets.sub("[redacted]", text)
        text = _JWT.sub("[redacted-jwt]", text)
        return _BEARER.sub(r"\1[redacted]", text)


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

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ctx = current()
        if ctx is not None:
            status = getattr(record, "status", None)
            text += f" [request_id={ctx.request_id}" + (f" status={status}]" if status is not None else "]")
        return self._redact(text)


def configure_logging(settings: Settings) -> None:
    """One stderr handler on the root logger; uvicorn's loggers write through it."""
    redact = Redactor(secrets_of(settings))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(redact) if settings.log_format == "json" else TextFormatter(redact))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
