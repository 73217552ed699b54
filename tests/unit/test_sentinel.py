"""Sentinel URLs: accepted with a master name, refused without one, passwords masked in every
`;`-separated chunk, and the master name handed to Celery for the broker and the backend."""

from __future__ import annotations

import pytest

from worker.core.celery_app import celery_config
from worker.core.errors import SettingsError
from worker.core.sentinel import master_params, safe_url, sentinels_of
from worker.core.settings import Settings

URL = "sentinel://:s3cret@127.0.0.1:26379/2;sentinel://:s3cret@127.0.0.1:26380/2;sentinel://h3"


def test_every_chunk_is_masked():
    masked = safe_url(URL)
    assert "s3cret" not in masked
    assert masked.count("sentinel://") == 3 and masked.count("**") == 2


def test_the_sentinels_and_the_masters_db_and_password_are_read():
    assert sentinels_of(URL) == [("127.0.0.1", 26379), ("127.0.0.1", 26380), ("h3", 26379)]
    assert master_params(URL) == {"db": 2, "password": "s3cret"}


def test_a_sentinel_url_needs_the_master_name():
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"REDIS_URL": URL})
    assert err.value.variable == "REDIS_SENTINEL_MASTER"
    assert "s3cret" not in str(err.value)


def test_a_malformed_chunk_is_refused_without_its_password():
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"REDIS_URL": URL + ";redis://:s3cret@h4:1",
                           "REDIS_SENTINEL_MASTER": "m"})
    assert err.value.variable == "REDIS_URL" and "s3cret" not in str(err.value)


def test_broker_and_backend_get_the_master_name_and_the_sentinels_password():
    s = Settings.from_env({"REDIS_URL": URL, "REDIS_SENTINEL_MASTER": "mymaster",
                           "REDIS_SENTINEL_PASSWORD": "sentinel-pw"})
    assert s.broker_url == s.result_backend == URL
    assert "sentinel-pw" not in repr(s)
    conf = celery_config(s, fail_fast=True)
    for key in ("broker_transport_options", "result_backend_transport_options"):
        options = conf[key]
        assert isinstance(options, dict)
        assert options["master_name"] == "mymaster"
        assert options["sentinel_kwargs"]["password"] == "sentinel-pw"
    # a plain Redis URL carries no sentinel options at all
    plain = celery_config(Settings.from_env({"REDIS_URL": "redis://h:1/0"}))
    assert "master_name" not in plain["broker_transport_options"]  # type: ignore[operator]
    assert plain["result_backend_transport_options"] == {}
