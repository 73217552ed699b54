"""TEST_RUN_TRACKING_URL's cluster form: parsed, masked, refused where it cannot work."""

from __future__ import annotations

import pytest

from worker.client.message import fused
from worker.core.cluster import is_cluster, limits_uri, parse
from worker.core.errors import SettingsError
from worker.core.sentinel import safe_url
from worker.core.settings import Settings


def test_the_cluster_url_names_seeds_credentials_and_tls():
    address = parse("rediss+cluster://ops:s%40cret@10.0.0.1:7000,[::1]:7001?ssl_cert_reqs=none")
    assert address.nodes == (("10.0.0.1", 7000), ("::1", 7001))
    assert (address.username, address.password, address.ssl) == ("ops", "s@cret", True)
    assert address.options == (("ssl_cert_reqs", "none"),)
    assert "s@cret" not in repr(address)
    plain = parse("redis+cluster://h1:1,h2:2")
    assert (plain.username, plain.password, plain.ssl) == (None, None, False)
    assert limits_uri("redis+cluster://:pw@h1:1,h2:2") == (
        "redis+cluster://h1:1,h2:2", {"password": "pw"})


@pytest.mark.parametrize("url", ["redis+cluster://h1,h2:2", "redis+cluster://h:1/3",
                                 "redis+cluster://h:1?db=2", "redis://h:1"])
def test_a_malformed_cluster_url_is_refused(url):
    with pytest.raises(ValueError):
        parse(url)


def test_passwords_are_masked_in_a_node_list():
    assert safe_url("redis+cluster://:sekrit@h:1,h:2") == "redis+cluster://:**@h:1,h:2"
    assert "sekrit" not in safe_url("rediss+cluster://u:sekrit@h:1,h:2")


def test_tracking_defaults_to_redis_url_and_a_cluster_turns_the_fused_path_off():
    single = Settings.from_env({"REDIS_URL": "redis://h:6379/0"})
    assert single.tracking_url == single.broker_url == "redis://h:6379/0"
    assert fused(single)
    on_cluster = Settings.from_env({"REDIS_URL": "redis://h:6379/0",
                                    "TEST_RUN_TRACKING_URL": "redis+cluster://:pw@h:1,h:2"})
    assert is_cluster(on_cluster.tracking_url)
    assert on_cluster.result_backend == "redis://h:6379/0"
    assert not fused(on_cluster)


@pytest.mark.parametrize(("env", "variable"), [
    ({"TEST_RUN_TRACKING_URL": "http://h:1"}, "TEST_RUN_TRACKING_URL"),
    ({"TEST_RUN_TRACKING_URL": "redis+cluster://h"}, "TEST_RUN_TRACKING_URL"),
    ({"CELERY_BROKER_URL": "redis+cluster://h:1,h:2"}, "CELERY_BROKER_URL"),
    ({"CELERY_RESULT_BACKEND": "redis+cluster://h:1"}, "CELERY_RESULT_BACKEND"),
])
def test_a_cluster_where_it_cannot_work_is_refused_naming_the_variable(env, variable):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert caught.value.variable == variable
