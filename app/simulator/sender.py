"""Sends a call's steps to a running service: Twilio callbacks signed exactly
as Twilio signs them (app.twilio.signature, the service's own code), platform
events with the events API key. Each is stamped with the moment it is sent.

Requests go out with the standard library (in worker threads), so the
simulator and `python -m app demo` need nothing beyond the service's own
dependencies."""

from __future__ import annotations

import asyncio
import hashlib
import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import urlencode

from app.simulator.flows import Call, Callback, PlatformEvent
from app.twilio.signature import compute_signature


class SendFailed(Exception):
    def __init__(self, what: str, status: int | None, detail: str) -> None:
        super().__init__(f"{what}: {status or 'no answer'} {detail[:200]}")
        self.status = status


def twilio_timestamp(now: datetime) -> str:
    """RFC 2822 with one-second resolution, as Twilio's `Timestamp`."""
    return format_datetime(now.astimezone(UTC).replace(microsecond=0))


def iso(now: datetime) -> str:
    return now.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Loopback traffic never goes through a proxy the environment may name.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=timeout) as response:
            return int(response.status), response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), exc.read().decode(errors="replace")


class Sender:
    def __init__(self, base_url: str, *, public_url: str, twilio_token: str, events_key: str,
                 timeout: float = 15.0) -> None:
        self._base_url = base_url.rstrip("/")
        self._public_url = public_url.rstrip("/")
        self._twilio_token = twilio_token
        self._events_key = events_key
        self._timeout = timeout

    async def send(self, call: Call, action: Callback | PlatformEvent, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        if isinstance(action, Callback):
            await self._callback(action, now)
        else:
            await self._event(call, action, now)

    def signed(self, callback: Callback, now: datetime) -> tuple[str, bytes, dict[str, str]]:
        """(URL path and query, form body, headers) of one callback as Twilio would send it."""
        params = {**callback.params, "Timestamp": twilio_timestamp(now)}
        tail = callback.path + (f"?{urlencode(callback.query)}" if callback.query else "")
        body = urlencode(params).encode()
        signature = compute_signature(self._twilio_token, self._public_url + tail, list(params.items()))
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature,
                   "I-Twilio-Idempotency-Token": hashlib.sha256(body).hexdigest()[:32],
                   "User-Agent": "TwilioProxy/1.1"}
        return tail, body, headers

    async def _callback(self, callback: Callback, now: datetime) -> None:
        tail, body, headers = self.signed(callback, now)
        await self._send(f"{callback.params.get('StatusCallbackEvent') or callback.params['CallStatus']} {tail}",
                         tail, body, headers)

    async def _event(self, call: Call, event: PlatformEvent, now: datetime) -> None:
        payload = {"type": event.type, "eventId": event.event_id,
                   "accountId": call.account.account_id, "sessionId": call.session_id, "occurredAt": iso(now),
                   **event.body}
        await self._send(f"{event.type} {call.session_id}", "/events", json.dumps({"events": [payload]}).encode(),
                         {"Content-Type": "application/json", "Authorization": f"Bearer {self._events_key}"})

    async def _send(self, what: str, path: str, body: bytes, headers: dict[str, str]) -> None:
        try:
            status, text = await asyncio.to_thread(_post, self._base_url + path, body, headers, self._timeout)
        except (urllib.error.URLError, OSError) as exc:
            raise SendFailed(what, None, str(exc) or type(exc).__name__) from None
        if status >= 300:
            raise SendFailed(what, status, text)
