"""Every run kept can be read back, through every route that shows it: an input nested deeper
than TEST_RUN_MAX_INPUT_DEPTH, or a number that is not finite, is refused at the door (400); a
result like that fails its run `invalid_result`; the deepest input and result accepted are read
by every route. (A run nested 255 deep answered 500 to its read, its list, its event stream and
its cancel for the retention period; `1e999` was echoed back as `Infinity`.)"""

from __future__ import annotations

import json

import pytest

from tests.support.api import expect_status, trigger, wait_terminal
from worker.core.settings import Settings
from worker.core.status import ErrorType, RunStatus

DEPTH = Settings.max_input_depth


def nested(depth: int, leaf: object = "leaf") -> dict:
    """An object `depth` levels deep."""
    value: dict = {"leaf": leaf}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def depth_of(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


@pytest.mark.parametrize("raw, why", [
    (json.dumps({"input": nested(DEPTH + 1)}), f"nested deeper than {DEPTH} levels"),
    ('{"input": ' + '{"a": ' * 254 + "{}" + "}" * 255, "nested deeper"),
    ('{"input": {"x": 1e999}}', "out of range"),
    ('{"input": {"x": NaN}}', "NaN"),
    ('{"input": {"x": "\\ud800"}}', "surrogate"),
])
def test_an_input_a_run_could_not_keep_is_400_and_takes_nothing(idle_client, raw, why):
    resp = idle_client.post("/api/workflows/echo/test-runs", data=raw,
                            content_type="application/json")
    body = expect_status(resp, 400)
    assert body["error"] == "invalid_request" and why in body["message"], body
    assert idle_client.get("/api/workflows/echo").get_json()["active_run_id"] is None


def read_everywhere(client, run_id: str, expect: dict) -> None:
    """The run through each route that shows it, each answering 200 with the same input."""
    workflow = run_id.rsplit("-", 1)[0]
    one = expect_status(client.get(f"/api/test-runs/{run_id}"), 200)
    assert one["input"] == expect
    full = expect_status(client.get(f"/api/workflows/{workflow}/test-runs?fields=full"), 200)
    assert [r["input"] for r in full["runs"] if r["run_id"] == run_id] == [expect]
    expect_status(client.get(f"/api/workflows/{workflow}/test-runs"), 200)
    expect_status(client.get(f"/api/test-runs/{run_id}/logs"), 200)
    events = client.get(f"/api/test-runs/{run_id}/events")
    assert events.status_code == 200
    first = next(iter(events.response)).decode()  # the `run` frame: the run as it is now
    events.close()
    data = next(line for line in first.splitlines() if line.startswith("data: "))
    assert json.loads(data[6:])["input"] == expect


def test_the_deepest_input_and_result_accepted_are_read_by_every_route(client):
    deepest = {"a": nested(DEPTH - 2, leaf=[1e308, -0.5, "\U0001F600"])}
    assert depth_of(deepest) == DEPTH
    run = trigger(client, "echo", deepest)
    done = wait_terminal(client, run["run_id"])
    assert done["status"] == RunStatus.SUCCEEDED and done["result"] == deepest
    read_everywhere(client, run["run_id"], deepest)


def test_a_queued_run_with_the_deepest_input_is_read_and_cancelled(idle_client):
    deepest = {"a": nested(DEPTH - 2, leaf=[0])}
    run = trigger(idle_client, "echo", deepest)
    assert expect_status(idle_client.get("/api/workflows/echo"), 200)["active_run_id"]
    read_everywhere(idle_client, run["run_id"], deepest)
    cancelled = expect_status(idle_client.post(f"/api/test-runs/{run['run_id']}/cancel"), 202)
    assert cancelled["input"] == deepest and cancelled["status"] == RunStatus.CANCELLED


@pytest.mark.parametrize("input, why", [
    ({"depth": DEPTH + 1}, f"nested deeper than {DEPTH} levels"),
    ({"depth": 300}, "nested deeper"),
    ({"number": "nan"}, "not JSON"),
    ({"number": "inf"}, "not JSON"),
])
def test_a_result_a_run_could_not_keep_fails_it_invalid_result(client, input, why):
    done = wait_terminal(client, trigger(client, "shaped", input)["run_id"])
    assert done["status"] == RunStatus.FAILED, done
    assert done["error_type"] == ErrorType.INVALID_RESULT and why in done["error"], done
    assert done["result"] is None
    read_everywhere(client, done["run_id"], input)


def test_the_deepest_result_is_kept(client):
    done = wait_terminal(client, trigger(client, "shaped", {"depth": DEPTH})["run_id"])
    assert done["status"] == RunStatus.SUCCEEDED and depth_of(done["result"]) == DEPTH
