import pytest
from pathlib import Path

from app.config import ConfigError, load_settings


def test_environment_overrides_files() -> None:
    s = load_settings({"APP_ENV": "test", "PORT": "9123", "REDIS_URL": "redis://x:1/0"})
    assert s.port == 9123 and s.redis_url == "redis://x:1/0" and s.events_api_key == "test-events-key"


def test_development_runs_without_any_environment() -> None:
    s = load_settings({})
    assert s.env == "development" and s.redis_url == "" and s.jwt_secret


def test_production_without_secrets_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        load_settings({"APP_ENV": "production", "REDIS_URL": "redis://x/0"})
    with pytest.raises(ConfigError, match="EVENTS_API_KEY"):
        load_settings({"APP_ENV": "production", "REDIS_URL": "redis://x/0", "JWT_SECRET": "s" * 32})
    with pytest.raises(ConfigError, match="REDIS_URL"):
        load_settings({"APP_ENV": "production", "JWT_SECRET": "s" * 32, "EVENTS_API_KEY": "k"})


def test_base64_secret_and_rs256() -> None:
    s = load_settings({"APP_ENV": "production", "REDIS_URL": "redis://x/0", "JWT_SECRET_BASE64": "YWJj",
                       "EVENTS_API_KEY": "k"})
    assert s.jwt_verify_key() == b"abc"
    with pytest.raises(ConfigError, match="JWT_PUBLIC_KEY"):
        load_settings({"APP_ENV": "test", "JWT_ALGORITHM": "RS256"})


def test_bad_value_is_named() -> None:
    with pytest.raises(ConfigError, match="port"):
        load_settings({"APP_ENV": "test", "PORT": "eighty"})


def test_packaged_defaults_then_config_dir_overrides_then_environment(tmp_path: Path) -> None:

    bare = load_settings({"EVENTS_API_KEY": "k"}, config_dir=Path(tmp_path / "none"))
    assert bare.env == "development" and bare.jwt_secret  # the packaged development.toml
    (tmp_path / "default.toml").write_text('port = 9100\nmax_events_per_batch = 7\n')
    (tmp_path / "development.toml").write_text('port = 9200\n')
    s = load_settings({"CONFIG_DIR": str(tmp_path), "MAX_EVENTS_PER_BATCH": "9"})
    assert (s.port, s.max_events_per_batch) == (9200, 9)


def test_what_a_command_passes_in_wins_over_the_environment_and_is_checked() -> None:
    s = load_settings({"APP_ENV": "test", "PORT": "9123", "HOST": "0.0.0.0"}, overrides={"port": 9200})
    assert s.port == 9200 and s.host == "0.0.0.0"
    with pytest.raises(ConfigError, match="no_such_setting"):
        load_settings({"APP_ENV": "test"}, overrides={"no_such_setting": 1})


def test_uvicorn_ws_is_a_setting() -> None:
    assert load_settings({"APP_ENV": "test"}).uvicorn_ws == "app.live.uvicorn_ws:LiveWebSocketProtocol"
    assert load_settings({"APP_ENV": "test", "UVICORN_WS": "websockets-sansio"}).uvicorn_ws == "websockets-sansio"
    with pytest.raises(ConfigError, match="UVICORN_WS"):
        load_settings({"APP_ENV": "test", "UVICORN_WS": "fastest"})


def test_server_is_uvicorn_unless_granian_is_asked_for() -> None:
    assert load_settings({"APP_ENV": "test"}).server == "uvicorn"
    assert load_settings({"APP_ENV": "test", "SERVER": "granian"}).server == "granian"
    assert load_settings({"APP_ENV": "test"}, overrides={"server": "granian"}).server == "granian"
    with pytest.raises(ConfigError, match="SERVER"):
        load_settings({"APP_ENV": "test", "SERVER": "hypercorn"})


def test_live_digest_every_is_a_count_of_patches_or_zero() -> None:
    assert load_settings({"APP_ENV": "test"}).live_digest_every == 50
    assert load_settings({"APP_ENV": "test", "LIVE_DIGEST_EVERY": "0"}).live_digest_every == 0
    with pytest.raises(ConfigError, match="LIVE_DIGEST_EVERY"):
        load_settings({"APP_ENV": "test", "LIVE_DIGEST_EVERY": "-1"})


def test_gc_policy_is_a_setting() -> None:
    assert load_settings({"APP_ENV": "test"}).gc_policy == "freeze"
    assert load_settings({"APP_ENV": "test", "GC_POLICY": "default"}).gc_policy == "default"
    with pytest.raises(ConfigError, match="GC_POLICY"):
        load_settings({"APP_ENV": "test", "GC_POLICY": "off"})
