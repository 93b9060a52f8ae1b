"""Asking Twilio's REST API about a call (I/O): the `twilio` library's Calls resource,
`client.calls(sid).fetch()`, as the call's account, with the account's auth token from
the settings (`TWILIO_AUTH_TOKENS`, else `TWILIO_AUTH_TOKEN`; the same tokens that
sign its callbacks). `TWILIO_API_URL` is where the requests go (Twilio's by default,
a stand-in in the tests; empty: no REST API, so no account has credentials).

The library is synchronous: every request runs in a worker thread, bounded by a
timeout, so the event loop never waits on Twilio. It is imported on the first
request (in that thread): a process that never asks Twilio never loads it."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from app.config import Settings
from app.sweep.answers import CallAnswer, Gone
from app.twilio.signature import TokenBook

# The library logs every request and response at INFO; only its warnings are of interest here.
_http_log = logging.getLogger("app.sweep.twilio_http")
_http_log.setLevel(logging.WARNING)


class ApiFailed(Exception):
    """Twilio could not answer: unreachable, too slow, refused the credentials, or a 5xx."""


class CallsApi:
    def __init__(self, settings: Settings) -> None:
        self.base_url = settings.twilio_api_url.rstrip("/")
        self.timeout = settings.sweep_fetch_timeout
        self._tokens = TokenBook.from_settings(settings.twilio_auth_token, settings.twilio_auth_token_secondary,
                                               settings.twilio_auth_tokens)
        self._clients: dict[tuple[str, str], Any] = {}  # (AccountSid, token) -> twilio Client, made once

    def can_ask(self, account_sid: str | None) -> bool:
        """Whether there are credentials to ask about this account's calls."""
        return bool(self.base_url and account_sid and self._tokens.tokens_for(account_sid))

    async def fetch(self, account_sid: str, call_sid: str) -> CallAnswer | Gone:
        """What Twilio says about the call; ApiFailed when it cannot say."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(self._fetch, account_sid, call_sid), self.timeout + 1)
        except TimeoutError:
            raise ApiFailed(f"no answer in {self.timeout:g}s") from None

    def _fetch(self, account_sid: str, call_sid: str) -> CallAnswer | Gone:
        """In a worker thread: each of the account's tokens in turn until one is accepted
        (during a rotation either may be the live one)."""
        from requests import RequestException
        from twilio.base.exceptions import TwilioException, TwilioRestException

        refused = ""
        for token in self._tokens.tokens_for(account_sid):
            try:
                call = self._client(account_sid, token).calls(call_sid).fetch()
            except TwilioRestException as exc:
                if exc.status == 404:
                    return Gone(call_sid, account_sid)
                if exc.status == 401:
                    refused = f"HTTP 401 {exc.msg}"
                    continue
                raise ApiFailed(f"HTTP {exc.status} {exc.msg}") from None
            except (RequestException, TwilioException, ValueError) as exc:
                raise ApiFailed(f"{type(exc).__name__}: {exc}") from None
            return CallAnswer(
                call_sid=call_sid, account_sid=account_sid, status=str(call.status or ""),
                date_created=_when(call.date_created), date_updated=_when(call.date_updated),
                start_time=_when(call.start_time), end_time=_when(call.end_time),
                duration=int(call.duration) if str(call.duration or "").isdigit() else None,
            )
        raise ApiFailed(refused or "no token")

    def _client(self, account_sid: str, token: str) -> Any:
        client = self._clients.get((account_sid, token))
        if client is None:
            from twilio.http.http_client import TwilioHttpClient
            from twilio.rest import Client

            http = TwilioHttpClient(timeout=self.timeout, logger=_http_log)
            # environment={}: no TWILIO_EDGE/TWILIO_REGION from the process environment rewriting the host.
            client = Client(account_sid, token, http_client=http, environment={})
            client.api.base_url = self.base_url  # the Api domain's public base URL: Twilio's, or a stand-in
            self._clients[(account_sid, token)] = client
        return client


def _when(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None
