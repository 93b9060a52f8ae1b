"""The sweep's settings: read like every other, and a setting it cannot run with stops start-up clearly."""

from __future__ import annotations

import re

import pytest

from app.config import ConfigError, load_settings


def test_the_packaged_defaults_sweep_and_tests_and_development_never_call_twilio() -> None:
    production = load_settings({"APP_ENV": "production", "JWT_SECRET": "x" * 32, "EVENTS_API_KEY": "k",
                                "REDIS_URL": "redis://r:6379/0"})
    assert production.sweep_interval_seconds == 30 and production.twilio_api_url == "https://api.twilio.com"
    assert production.sweep_ringing_after_seconds == 180 and production.sweep_in_progress_max_seconds == 14_700
    assert load_settings({"APP_ENV": "development"}).twilio_api_url == ""
    test = load_settings({"APP_ENV": "test"})
    assert test.sweep_interval_seconds == 0 and test.twilio_api_url == ""


@pytest.mark.parametrize(("env", "message"), [
    ({"SWEEP_INTERVAL_SECONDS": "-1"}, "SWEEP_INTERVAL_SECONDS must be >= 0"),
    ({"SWEEP_RINGING_AFTER_SECONDS": "0"}, "SWEEP_RINGING_AFTER_SECONDS must be > 0"),
    ({"SWEEP_INTERVAL_SECONDS": "60", "SWEEP_LEASE_SECONDS": "60"}, "SWEEP_LEASE_SECONDS must be longer"),
    ({"TWILIO_API_URL": "api.twilio.com"}, "TWILIO_API_URL must be an http(s) URL"),
    ({"SWEEP_FETCH_TIMEOUT": "soon"}, "bad setting"),
])
def test_a_sweep_setting_it_cannot_run_with_stops_start_up(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings({"APP_ENV": "test", **env})
