"""The web as deployed — the Procfile's web line, `python -m web.front`: nginx on WEB_BIND in
front of two gunicorns on private unix sockets.

gunicorn's gthread worker hands a connection to a thread once its first bytes arrive, then
reads the rest of the request with no deadline: 20 clients that send a request line and a
header byte every 5 s held every thread of 2 workers × 8, and /healthz timed out until they
left (more threads only move the number). nginx reads every request on its event loop, with a
deadline for the headers and for each read of the body, and hands gunicorn whole requests
only; what it measured is in docs/operations.md (the front).

The two gunicorns (POOLS; nginx.conf routes between them): `app` answers the requests that end
once answered — triggers, conflicts, reads, cancels, the page — on sync workers, one request a
process; `held` (gunicorn.conf.py as it is: gthread, 2 × 12) the requests that hold their
worker for as long as they last, event streams and `?wait=`. Behind this nginx, sync workers
answered more triggers and conflicts than gthread ones, at a lower p99 (threads of one process
queue for its GIL), but a held request would take a whole sync process: each kind of
request gets the worker made for it (docs/BENCHMARKS.md, the server's choice). Both count into
one metrics directory (PROMETHEUS_MULTIPROC_DIR, the operator's or one here), so /metrics,
which `app` answers, adds up every process of the web.

This renders the repository's nginx.conf (each `{{ … }}` filled in, the error pages from
web/before_app.py) into a private directory (mode 0700, removed at exit), checks it with
`nginx -t`, starts the gunicorns (gunicorn.conf.py) on sockets there, then nginx. SIGTERM,
SIGINT and SIGHUP go to all three; when one exits, the others are stopped, and this exits with
the first one's status. Like gunicorn alone, it refuses a non-loopback WEB_BIND without a
token; and it refuses to start without nginx rather than serve without its front.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from worker.core.metrics import MULTIPROC_ENV
from worker.core.settings import Settings

from .before_app import BEFORE_APP, FRONT_MAX_BODY, answer
from .exposure import refuse_open_bind, web_bind

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "nginx.conf"
#: the status nginx would answer → the one of web/before_app.py it answers instead (494 is
#: nginx's own code for headers too large; 502 and 504: the app did not answer)
NGINX_ERRORS = {400: 400, 404: 404, 413: 413, 414: 414, 494: 431, 500: 500, 501: 501,
                502: 503, 504: 503, 505: 505}
#: seconds each child gets to stop before it is killed
STOP_GRACE_S = 15.0
#: the gunicorns behind nginx, by the upstream nginx.conf names: what each adds to
#: gunicorn.conf.py's settings on its command line
POOLS: dict[str, list[str]] = {
    "app": ["--worker-class", "web.before_app.JsonErrorsSyncWorker", "--threads", "1"],
    "held": [],
}
_PLACEHOLDER = re.compile(r"\{\{ (\w+) \}\}")


def find_nginx() -> str | None:
    """Debian puts nginx in /usr/sbin, which is not on every user's PATH."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def _quoted(text: str) -> str:
    """`text` as an nginx single-quoted string (a `$` would be read as a variable)."""
    assert "$" not in text, text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def error_pages() -> str:
    """nginx's `error_page`s and the locations answering them, with the API's JSON errors."""
    lines = []
    for nginx_status, ours in NGINX_ERRORS.items():
        status, headers, body = answer(BEFORE_APP[ours])
        uri = f"/_front/{nginx_status}"
        lines.append(f"        error_page {nginx_status} ={status} {uri};")
        lines.append(f"        location = {uri} {{")
        lines.append("            internal;")
        lines.append(f"            default_type {headers.pop('Content-Type')};")
        lines += [f"            add_header {name} {_quoted(value)} always;"
                  for name, value in headers.items()]
        lines.append(f"            return 200 {_quoted(body.decode())};")
        lines.append("        }")
    return "\n".join(lines)


def render(template: str, **values: str) -> str:
    """The template with each `{{ name }}` replaced; a name without a value is an error."""
    def fill(match: re.Match[str]) -> str:
        return values[match.group(1)]
    return _PLACEHOLDER.sub(fill, template)


def nginx_conf(run_dir: Path, listen: str) -> str:
    return render(TEMPLATE.read_text(), run_dir=str(run_dir), listen=listen,
                  app_socket=str(run_dir / "app.sock"), held_socket=str(run_dir / "held.sock"),
                  max_body=str(FRONT_MAX_BODY),
                  error_pages=error_pages(),
                  # as root, nginx's workers would drop to `nobody`, which cannot reach the
                  # app's socket: they run as the user gunicorn runs as
                  user="user root;" if os.geteuid() == 0 else "")


def main() -> int:
    bind = web_bind()
    why = refuse_open_bind([bind], Settings.from_env())
    if why:
        print(f"web: {why}", file=sys.stderr)
        return 2
    nginx = find_nginx()
    if nginx is None:
        print("web: nginx is required in front of gunicorn (it holds slow clients off the app's "
              "threads): install Debian's nginx (`apt-get install nginx`; `make run` and "
              "`make test` do, as root)", file=sys.stderr)
        return 2
    run_dir = Path(tempfile.mkdtemp(prefix="testruns-web-"))
    try:
        conf = run_dir / "nginx.conf"
        conf.write_text(nginx_conf(run_dir, bind))
        nginx_argv = [nginx, "-p", str(run_dir), "-c", str(conf), "-e", "stderr"]
        if subprocess.run([*nginx_argv, "-q", "-t"], check=False).returncode != 0:
            return 2
        env = dict(os.environ)
        if not env.get(MULTIPROC_ENV):  # one directory for both pools' processes
            env[MULTIPROC_ENV] = str(run_dir / "metrics")
        pools: dict[str, subprocess.Popen[bytes]] = {}
        for name, extra in POOLS.items():
            pools[name] = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"),
                 "web:create_app()", "--bind", f"unix:{run_dir / f'{name}.sock'}", *extra],
                cwd=ROOT, env=env)
        for name, proc in pools.items():
            if not _wait_for_socket(run_dir / f"{name}.sock", proc):
                for other in pools.values():
                    _stop(other, signal.SIGTERM)
                return proc.wait() or 1
        return supervise({**{f"gunicorn ({name})": proc for name, proc in pools.items()},
                          "nginx": subprocess.Popen(nginx_argv)})
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _wait_for_socket(path: Path, gunicorn: subprocess.Popen[bytes]) -> bool:
    """gunicorn's master binds its socket before its workers boot; nginx may connect from then
    on (connections wait in the socket's backlog until a worker takes them)."""
    deadline = time.monotonic() + 60
    while not path.exists():
        if gunicorn.poll() is not None or time.monotonic() > deadline:
            _stop(gunicorn, signal.SIGTERM)
            return False
        time.sleep(0.05)
    return True


def supervise(procs: dict[str, subprocess.Popen[bytes]]) -> int:
    """Until one exits: forward the stop and reload signals; then stop the others."""
    stopping = False

    def graceful(name: str, signum: int) -> int:
        # SIGQUIT is nginx's graceful stop (its SIGTERM drops open connections at once)
        return signal.SIGQUIT if name == "nginx" and signum != signal.SIGHUP else signum

    def forward(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = stopping or signum != signal.SIGHUP
        for name, proc in procs.items():
            if proc.poll() is None:
                proc.send_signal(graceful(name, signum))

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    pid, status = os.wait()
    first = next(name for name, proc in procs.items() if proc.pid == pid)
    procs[first].returncode = os.waitstatus_to_exitcode(status)
    print(f"web: {first} exited ({procs[first].returncode}): stopping the others",
          file=sys.stderr)
    for name, proc in procs.items():
        if name != first:
            _stop(proc, graceful(name, signal.SIGTERM))
    # a web that ends without being asked to has failed, whatever its status says
    return procs[first].returncode if stopping else (procs[first].returncode or 1)


def _stop(proc: subprocess.Popen[bytes], sig: int) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    sys.exit(main())
