"""gunicorn's settings for the web process, in one place.

The Procfile's web line (through web/front.py, behind nginx) and the tests' Gunicorn helper
(tests/support/procs.py) both start gunicorn with `-c gunicorn.conf.py`; they override bind
(and the helper workers and threads) on its command line, which takes precedence over this
file. No `preload_app`: each worker must build its own app and Redis clients (a connection
shared across the fork times out).
"""

from web.exposure import web_bind
from worker.core.logs import gunicorn_logconfig
from worker.core.metrics import prepare_multiprocess, remove_multiprocess_dir
from worker.core.settings import Settings

# WEB_BIND (its default: web/exposure.py) when gunicorn runs alone; the Procfile's front
# (web/front.py) binds it to a private socket behind nginx, which listens on WEB_BIND. Always
# set, so the PORT that honcho gives each process (gunicorn's fallback bind) never applies.
bind = [web_bind()]
# gthread, whose own error answers (a request line or headers too large, a malformed request)
# are the API's JSON errors, not HTML pages (web/before_app.py)
worker_class = "web.before_app.JsonErrorsWorker"
workers = 2
# TEST_RUN_MAX_STREAMS (4) event streams and TEST_RUN_MAX_WAITERS (4) waiting requests may each
# hold a thread: 12 leaves 4 for triggers and reads however many watch or wait
threads = 12
# gunicorn 27 opens ~/.gunicorn/gunicorn.ctl by default, one path shared by every instance.
control_socket_disable = True
accesslog = "-"

# Logging: gunicorn configures only its own `gunicorn.*` loggers; the app gives the root logger
# a handler in create_app() (worker/core/logs.py), so the web's lifecycle lines are printed too.
# LOG_FORMAT=json: gunicorn's error and access logs and the app's lines as JSON objects.
logconfig_dict = gunicorn_logconfig(Settings.from_env().log_format) or {}


def child_exit(server, worker):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    """A dead worker's live gauges must not be summed any more (its counters stay)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    remove_multiprocess_dir()


def on_starting(server):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    """Refuse to listen beyond loopback without a token (web/exposure.py says why). Metrics:
    every gunicorn worker counts into PROMETHEUS_MULTIPROC_DIR, which must exist (and be in the
    environment) before the workers start: created here, in the master (worker/core/metrics.py)."""
    from web.exposure import refuse_open_bind
    from worker.core.settings import Settings

    why = refuse_open_bind(server.cfg.bind, Settings.from_env())
    if why:
        raise SystemExit(why)
    prepare_multiprocess("web")


def post_worker_init(worker):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    """The app is loaded (no preload: in this worker), and what it loaded — the workflows'
    registry above all — lives as long as the worker: the garbage collector stops scanning it
    (`gc.freeze`), after one collection of what loading left. Measured: with 100,000 workflows
    registered a worker tracks ~600,000 objects, and its full collections took 211–324 ms,
    twice in 90 s of load per worker — a stall of every request it held (docs/BENCHMARKS.md,
    the web's garbage collections)."""
    import gc

    gc.collect()
    gc.freeze()
