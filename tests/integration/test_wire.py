"""Script calls sent over a pooled connection without redis-py's command layers
(worker/core/lua/wire.py) behave as redis-py's: a script Redis lost is loaded again, an error
reply returns its connection to the pool, and the clients the path does not serve go through
redis-py. The late reply that the client's retry answers (the script ran twice) is
tests/integration/test_retries.py, which runs over this path (the first test here says so)."""

from __future__ import annotations

import pytest
import redis
from redis.exceptions import ResponseError

from tests.support.api import store_of
from worker.core.connection import redis_client
from worker.core.lua import wire
from worker.core.settings import Settings
from worker.core.status import RunStatus


def test_the_stores_scripts_go_over_the_lean_path(config, tracking_cluster):
    if tracking_cluster:
        pytest.skip("a RedisCluster routes by key: its scripts go through redis-py")
    store = store_of(config)
    scripts = store.connection.scripts
    assert {s._pool for s in scripts.all()} == {store.connection.redis.connection_pool}


def test_clients_it_does_not_serve_go_through_redis_py(private_redis):
    assert wire.lean(redis.Redis.from_url(private_redis.url, single_connection_client=True)) \
        is None  # one connection, shared under a lock: redis-py's
    callbacks = redis.Redis.from_url(private_redis.url)
    callbacks.set_response_callback("EVALSHA", lambda reply, **_: reply)
    assert wire.lean(callbacks) is None


def test_a_script_redis_lost_is_loaded_again(config, private_redis):
    store = store_of(config, REDIS_URL=private_redis.url, TEST_RUN_TRACKING_URL=private_redis.url)
    first = store.admit("echo", {})
    server = private_redis.client()
    server.script_flush()  # what a restarted Redis without persistence has forgotten
    assert not any(server.script_exists(store.connection.scripts.finish._script.sha))
    store.finish(first.run_id, RunStatus.SUCCEEDED, result={"ok": True})
    run = store.get(first.run_id)
    assert run is not None and run.status is RunStatus.SUCCEEDED
    assert store.holders(["echo"]) == {"echo": None}


def test_an_error_reply_returns_its_connection(private_redis):
    client = redis_client(Settings.from_env(overrides={"REDIS_URL": private_redis.url}))
    pool = wire.lean(client)
    assert pool is not None
    failing = client.register_script("return redis.error_reply('NOPE broken on purpose')")
    answering = client.register_script("return ARGV[1]")
    failing.sha, answering.sha = client.script_load(failing.script), \
        client.script_load(answering.script)
    for _ in range(3):  # a leaked connection would be a new one each time
        with pytest.raises(ResponseError, match="broken on purpose"):
            wire.evalsha(pool, failing.sha, [], [])
        assert wire.evalsha(pool, answering.sha, [], ["still here"]) == "still here"
    assert len(pool._connections) == 1
