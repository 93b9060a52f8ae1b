"""A stand-in for Twilio's REST API, Calls resource only: a real HTTP server on a free
loopback port, answering as `api.twilio.com` does, which the sweep's `twilio` library
client is pointed at (TWILIO_API_URL).

`GET /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json` with HTTP Basic auth
(AccountSid, auth token): 200 and the Call resource's JSON for a call it was told
about, 404 with Twilio's error body (code 20404) for any other, 401 (code 20003)
for wrong credentials. `fetches` counts the requests per CallSid; `delay` slows
every answer (to make sweeps overlap)."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_CALL = re.compile(r"/2010-04-01/Accounts/(AC[0-9a-f]{32})/Calls/(CA[0-9a-f]{32})\.json")


def rfc2822(at: datetime) -> str:
    return format_datetime(at.astimezone(UTC).replace(microsecond=0))


def call_resource(account_sid: str, call_sid: str, status: str, *, created: datetime,
                  start: datetime | None = None, end: datetime | None = None, duration: int | None = None,
                  from_: str = "+15551230000", to: str = "+15559870000", direction: str = "inbound",
                  parent: str | None = None) -> dict[str, Any]:
    """A Call resource as Twilio's API returns it (2010-04-01)."""
    uri = f"/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}.json"
    return {
        "account_sid": account_sid, "annotation": None, "answered_by": None, "api_version": "2010-04-01",
        "caller_name": None, "date_created": rfc2822(created), "date_updated": rfc2822(end or start or created),
        "direction": direction, "duration": str(duration) if duration is not None else None,
        "end_time": rfc2822(end) if end else None, "forwarded_from": None, "from": from_, "from_formatted": from_,
        "group_sid": None, "parent_call_sid": parent, "phone_number_sid": None, "price": None,
        "price_unit": "USD", "queue_time": "0", "sid": call_sid, "start_time": rfc2822(start) if start else None,
        "status": status, "to": to, "to_formatted": to, "trunk_sid": None, "uri": uri,
        "subresource_uris": {"notifications": uri.replace(".json", "/Notifications.json"),
                             "recordings": uri.replace(".json", "/Recordings.json")},
    }


class TwilioApi:
    def __init__(self, tokens: dict[str, str]) -> None:
        self.tokens = dict(tokens)  # AccountSid -> the auth token it accepts
        self.calls: dict[tuple[str, str], dict[str, Any]] = {}  # (AccountSid, CallSid) -> resource
        self.fetches: Counter[str] = Counter()
        self.delay = 0.0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                outer._answer(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def know(self, resource: dict[str, Any]) -> None:
        self.calls[(resource["account_sid"], resource["sid"])] = resource

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        match = _CALL.fullmatch(path)
        if match is None:
            self._send(handler, 404, _error(404, 20404, f"The requested resource {path} was not found"))
            return
        account_sid, call_sid = match.groups()
        self.fetches[call_sid] += 1
        if self.delay:
            time.sleep(self.delay)
        if not self._authorized(handler.headers.get("Authorization"), account_sid):
            self._send(handler, 401, _error(401, 20003, "Authenticate"))
            return
        resource = self.calls.get((account_sid, call_sid))
        if resource is None:
            self._send(handler, 404, _error(404, 20404, f"The requested resource {path} was not found"))
            return
        self._send(handler, 200, resource)

    def _authorized(self, header: str | None, account_sid: str) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user == account_sid and self.tokens.get(account_sid) == password

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


def _error(status: int, code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}
