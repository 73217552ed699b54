"""Settings: one place, layered defaults → environment → overrides, validated."""

from __future__ import annotations

import pytest

from worker.core.settings import Settings, SettingsError


def test_defaults():
    s = Settings.from_env({})
    assert s.redis_url == s.broker_url == s.result_backend == "redis://127.0.0.1:6379/0"
    assert (s.time_limit, s.soft_time_limit) == (600, 590)
    assert s.queue_timeout == 300 and s.retention == 7 * 24 * 3600
    assert s.heartbeat_ttl == 30 and s.heartbeat_interval == 10
    assert s.visibility_timeout == 150  # half the queue timeout: see Settings
    assert s.workflow_modules == ("worker.workflows.examples",)
    assert s.api_token is None


def test_smallest_whole_values_are_accepted():
    s = Settings.from_env({"TEST_RUN_RETENTION": "1", "TEST_RUN_MAX_LOG_LINES": "1"})
    assert (s.retention, s.max_log_lines) == (1, 1)


def test_layering_env_then_overrides():
    s = Settings.from_env({"REDIS_URL": "redis://h:1/2", "TEST_RUN_TIME_LIMIT": "10"},
                          overrides={"TEST_RUN_TIME_LIMIT": "20", "API_TOKEN": "t"})
    assert s.broker_url == s.result_backend == "redis://h:1/2"
    assert s.time_limit == 20 and s.soft_time_limit == 16 and s.api_token == "t"
    amqp = Settings.from_env({"CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1//"})
    assert amqp.broker_url.startswith("amqp://") and amqp.result_backend.startswith("redis://")


@pytest.mark.parametrize("env, variable", [
    ({"CELERY_RESULT_BACKEND": "rpc://"}, "CELERY_RESULT_BACKEND"),
    ({"CELERY_RESULT_BACKEND": "db+sqlite:///x.db"}, "CELERY_RESULT_BACKEND"),
    ({"REDIS_URL": "amqp://x"}, "REDIS_URL"),
    ({"TEST_RUN_TIME_LIMIT": "ten"}, "TEST_RUN_TIME_LIMIT"),
    ({"TEST_RUN_TIME_LIMIT": "-1"}, "TEST_RUN_TIME_LIMIT"),
    ({"TEST_RUN_TIME_LIMIT": "10", "TEST_RUN_SOFT_TIME_LIMIT": "10"}, "TEST_RUN_SOFT_TIME_LIMIT"),
    ({"TEST_RUN_KEY_PREFIX": "a{b}"}, "TEST_RUN_KEY_PREFIX"),
    ({"TEST_RUN_KEY_PREFIX": "runs*"}, "TEST_RUN_KEY_PREFIX"),
    ({"TEST_RUN_KEY_PREFIX": "a?b"}, "TEST_RUN_KEY_PREFIX"),
    ({"TEST_RUN_KEY_PREFIX": "a[b"}, "TEST_RUN_KEY_PREFIX"),
    ({"TEST_RUN_KEY_PREFIX": "a b"}, "TEST_RUN_KEY_PREFIX"),
])
def test_bad_values_are_refused_naming_the_variable(env, variable):
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert info.value.variable == variable
    assert variable in str(info.value)


def test_the_api_token_is_never_shown_in_a_repr():
    s = Settings.from_env({"API_TOKEN": "hunter2-secret"})
    assert s.api_token == "hunter2-secret"
    assert "hunter2" not in repr(s) and "hunter2" not in str(s)


def test_every_default_is_the_field_default():
    """`from_env` with an empty environment is the dataclass as declared (plus the URLs the
    broker and backend inherit from REDIS_URL)."""
    assert Settings.from_env({}) == Settings()


def test_the_api_token_is_stripped():
    """A token read from a secrets file often ends in a newline the client never sends."""
    assert Settings.from_env({"API_TOKEN": "  s3cret\n"}).api_token == "s3cret"
    assert Settings.from_env({"API_TOKEN": " \n"}).api_token is None


def test_a_refused_url_is_named_without_its_password():
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"REDIS_URL": "amqp://user:hunter2@host//"})
    assert "hunter2" not in str(info.value) and "host" in str(info.value)


@pytest.mark.parametrize("raw, value", [("true", True), ("1", True), ("Yes", True),
                                        ("false", False), ("0", False), ("off", False)])
def test_yes_no_settings(raw, value):
    assert Settings.from_env({"ALLOW_ANONYMOUS": raw}).allow_anonymous is value


def test_a_yes_no_setting_refuses_anything_else():
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"ALLOW_ANONYMOUS": "maybe"})
    assert info.value.variable == "ALLOW_ANONYMOUS"


SECRET = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"


def test_the_webhook_secret_is_checked_and_never_shown():
    settings = Settings.from_env({"WEBHOOK_SECRET": SECRET, "WEBHOOK_URL": "https://h.test/x"})
    assert settings.webhook_secret == SECRET and SECRET not in repr(settings)
    for wrong in ("c2VjcmV0", "whsec_===", "whsec_!!not base64!!"):
        with pytest.raises(SettingsError) as info:
            Settings.from_env({"WEBHOOK_SECRET": wrong})
        assert info.value.variable == "WEBHOOK_SECRET" and wrong not in str(info.value)


def test_a_webhook_url_needs_a_secret_and_a_scheme():
    for env in ({"WEBHOOK_URL": "https://h.test/x"},
                {"WEBHOOK_URL": "h.test/x", "WEBHOOK_SECRET": SECRET}):
        with pytest.raises(SettingsError) as info:
            Settings.from_env(env)
        assert info.value.variable == "WEBHOOK_URL"
