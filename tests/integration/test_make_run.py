"""`make run` as a new user meets it: the Procfile's web, worker and flower, started by
honcho as `make run` does, serve a new user's first curl: POST echo, then GET → succeeded."""

from __future__ import annotations

import base64
import json
import os
import signal
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from devtools.redis_server import free_port
from tests.support.api import ts
from tests.support.http import request
from tests.support.procs import BIN, Proc, base_env, wait_for
from worker.core.status import RunStatus


def http_get(url: str, auth: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth \
        else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def command_lines(pid: int) -> list[str]:
    """The command lines of pid's descendants, as `ps` shows them to any user."""
    found = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    for child in map(int, children):
        try:
            found.append(Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
                         .decode(errors="replace"))
        except OSError:
            continue
        found += command_lines(child)
    return found


@pytest.fixture
def stack(config):
    web, flower = free_port(), free_port()
    env = dict(config, WEB_BIND=f"127.0.0.1:{web}", FLOWER_PORT=str(flower),
               FLOWER_BASIC_AUTH="admin:pw",
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = Proc([str(BIN / "honcho"), "start"], base_env(env), "honcho")
    yield proc, f"http://127.0.0.1:{web}", f"http://127.0.0.1:{flower}"
    proc.signal(signal.SIGINT)
    try:
        proc.wait_exit(20)
    finally:
        proc.kill_group()


def test_make_run_stack_serves_the_first_curl(stack):
    proc, web, flower = stack
    wait_for(lambda: http_get(web + "/healthz")[0] == 200, 30, "web to answer")
    # the worker may still be starting: the run waits in the queue meanwhile
    status, run = request("POST", web + "/api/workflows/echo/test-runs", {"input": {"hi": 1}})
    assert status == 202, run
    status_url = web + f"/api/test-runs/{run['run_id']}"
    done = wait_for(lambda: (lambda r: r if r["status"] == RunStatus.SUCCEEDED else None)(
        request("GET", status_url)[1]), 30, "the run to succeed")
    assert done["result"] == {"hi": 1}

    # warm: a second run goes from admission to its end within a second or two, by its record
    _, run2 = request("POST", web + "/api/workflows/echo/test-runs", {"input": {}})
    done2 = wait_for(lambda: (lambda r: r if r["status"] == RunStatus.SUCCEEDED else None)(
        request("GET", web + f"/api/test-runs/{run2['run_id']}")[1]), 10, "the second run")
    assert ts(done2["finished_at"]) - ts(done2["created_at"]) < 2.0

    # Flower is up, behind basic auth, and sees the worker and the run
    wait_for(lambda: http_get(flower + "/healthcheck")[0] == 200, 30, "flower to answer")
    assert http_get(flower + "/api/workers")[0] == 401
    def worker_seen() -> bool:
        code, body = http_get(flower + "/api/workers?refresh=1", auth="admin:pw")
        return code == 200 and bool(json.loads(body or b"{}"))
    wait_for(worker_seen, 30, "flower to list the worker", interval=0.5)
    def run_seen() -> bool:
        code, body = http_get(flower + "/api/tasks", auth="admin:pw")
        return code == 200 and run2["run_id"] in json.loads(body or b"{}")
    wait_for(run_seen, 15, "flower to show the run", interval=0.5)
    # its credentials came from the environment: no command line shows them
    commands = command_lines(proc.pid)
    assert any("flower" in cmd for cmd in commands), commands
    assert not [cmd for cmd in commands if "admin:pw" in cmd]

    # Ctrl-C stops everything
    proc.signal(signal.SIGINT)
    proc.wait_exit(20)
    assert http_get(web + "/healthz")[0] == 0
