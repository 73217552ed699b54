"""gunicorn's settings for the web process, in one place.

The Procfile's web line and the tests' Gunicorn helper (tests/support/procs.py) both start
gunicorn with `-c gunicorn.conf.py`; the helper overrides bind, workers and threads on its
command line, which takes precedence over this file. No `preload_app`: each worker must build
its own app and Redis clients (a connection shared across the fork times out).
"""

import os

# WEB_BIND's default lives here and nowhere else. Always set, so the PORT that honcho gives
# each process (gunicorn's fallback bind) never applies.
bind = [os.environ.get("WEB_BIND") or "127.0.0.1:8000"]  # empty counts as unset
worker_class = "gthread"
workers = 2
threads = 8
# gunicorn 27 opens ~/.gunicorn/gunicorn.ctl by default, one path shared by every instance.
control_socket_disable = True
accesslog = "-"

# Logging: gunicorn configures only its own `gunicorn.*` loggers; the app gives the root logger
# a handler in create_app() (worker/logs.py), so the web's lifecycle lines are printed too.


def on_starting(server):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    """Refuse to listen beyond loopback without a token (web/exposure.py says why)."""
    from web.exposure import refuse_open_bind
    from worker.settings import Settings

    why = refuse_open_bind(server.cfg.bind, Settings.from_env())
    if why:
        raise SystemExit(why)
