"""A callback_url whose *name* resolves to a loopback, link-local, private or metadata address
is refused like the address itself (422 `invalid_callback_url`), unless that host is listed
explicitly. The names are made up in a network namespace's own /etc/hosts (needs root: skipped
otherwise); nothing is sent to any of the addresses, the check only resolves them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import netns
from tests.support.api import make_config
from tests.support.procs import ROOT, base_env

NAMES = {"loop.test": "127.0.0.1", "meta.test": "169.254.169.254",
         "intranet.test": "10.0.0.1", "six.test": "::1", "listed.test": "10.0.0.2"}

#: run inside the namespace: the API's answer to a trigger with each callback_url (no Redis is
#: reached: the check comes before anything is taken), and the guard's own verdict for a
#: listed host
PROBE = """
import json, sys
from web import create_app
from worker.core import egress
config = json.loads(sys.argv[1])
client = create_app(config).test_client()
out = {}
for name in json.loads(sys.argv[2]):
    resp = client.post("/api/workflows/echo/test-runs",
                       json={"input": {}, "callback_url": f"https://{name}/hook"})
    out[name] = [resp.status_code, resp.get_json().get("error"), resp.get_json()["message"]]
listed = egress.target("http://listed.test:8080/hook", guard=True,
                       allowed_hosts=tuple(config["WEBHOOK_ALLOWED_HOSTS"].split(",")))
out["listed"] = list(listed.addresses)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def namespaces_available() -> None:
    why = netns.unavailable()
    if why:
        pytest.skip(why)


def test_names_that_resolve_inside_are_refused_unless_listed(namespaces_available):
    config = make_config(WEBHOOK_SECRET="whsec_" + "a2V5a2V5a2V5a2V5a2V5a2V5",
                         WEBHOOK_ALLOWED_HOSTS=".test,listed.test")
    refused = [n for n in NAMES if n != "listed.test"]
    with netns.NamedHosts(NAMES) as hosts:
        proc = subprocess.run([*hosts.prefix(), sys.executable, "-c", PROBE,
                               json.dumps(config), json.dumps(refused + ["listed.test"])],
                              env=base_env(config), cwd=ROOT, capture_output=True, text=True,
                              timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in refused:  # `.test` admits the host, not where it points
        status, code, message = out[name]
        assert (status, code) == (422, "invalid_callback_url"), (name, out[name])
        assert "resolves to a loopback, link-local, private or metadata" in message, message
    # listed exactly: the check passes (the trigger itself needs the Redis outside)
    assert out["listed"] == ["10.0.0.2"]
