"""Who can reach the web: the Host names it answers, whether it may listen beyond this machine
without a token, and the client's address behind the front (nginx).

With no API_TOKEN (the default, for a laptop), anything that can reach the port can trigger and
cancel runs — and a browser page can too, by DNS rebinding its own name onto 127.0.0.1 unless
the Host header is checked. So the web answers only TRUSTED_HOSTS, says at start whether auth
is on, and refuses to bind a non-loopback address without a token unless ALLOW_ANONYMOUS=true.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Iterable
from typing import Any

from flask import Flask, request
from werkzeug.exceptions import SecurityError

from worker.core.settings import Settings

logger = logging.getLogger(__name__)

WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]", "*"}
#: WEB_BIND's default, here and nowhere else
DEFAULT_BIND = "127.0.0.1:8000"


def web_bind() -> str:
    """Where clients reach the web: nginx listens there when the Procfile's front runs it
    (web/front.py); gunicorn binds it itself only when started alone. Empty counts as unset."""
    return os.environ.get("WEB_BIND") or DEFAULT_BIND


class FrontAddress:
    """WSGI middleware: the client's address behind the front. A request that came over a unix
    socket (no peer address) came from nginx, which writes the client's address into
    X-Forwarded-For over whatever the client sent; over TCP the peer is the client, and its
    X-Forwarded-For is ignored — anyone can send one. The address keys the rate limit and the
    per-client stream cap, and is what gunicorn's access log shows. The outermost WSGI layer
    (create_app): the trigger's fast path reads it too."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not environ.get("REMOTE_ADDR"):
            forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
            environ["REMOTE_ADDR"] = forwarded.rsplit(",", 1)[-1].strip()
        return self.app(environ, start_response)


def _host_of(bind: str) -> str:
    """The host part of a gunicorn bind (`host:port`, `[v6]:port`, `unix:/path`)."""
    if bind.startswith("unix:"):
        return "unix"
    host = bind.rsplit(":", 1)[0] if ":" in bind else bind
    return host.strip("[]")


def trusted_hosts(settings: Settings, web_bind: str | None = None) -> list[str] | None:
    """Flask's TRUSTED_HOSTS for these settings (None: any host)."""
    if "*" in settings.trusted_hosts:
        return None
    hosts = list(settings.trusted_hosts)
    for bind in (web_bind or os.environ.get("WEB_BIND") or "").split(","):
        host = _host_of(bind.strip())
        if bind.strip() and host not in WILDCARD_HOSTS and host != "unix" and host not in hosts:
            hosts.append(host)
    return hosts


def configure(app: Flask, settings: Settings) -> None:
    app.config["TRUSTED_HOSTS"] = trusted_hosts(settings)

    @app.before_request
    def _host_first() -> None:
        """Flask checks TRUSTED_HOSTS while it matches the route but raises the error only at
        dispatch, after every before_request, so a foreign Host with a wrong token answered
        401 (the slot model's HTTP machine found it). Registered before auth: the Host check
        comes first, as documented."""
        if isinstance(request.routing_exception, SecurityError):
            raise request.routing_exception

    if settings.callers():
        logger.info("API auth is on: /api/ needs a bearer token")
    else:
        logger.warning("API auth is OFF (no API_TOKEN or API_TOKENS): anyone who can reach "
                       "this port can trigger and cancel test runs")


def is_loopback(bind: str) -> bool:
    host = _host_of(bind)
    if host == "unix" or host == "localhost":
        return True
    if host in WILDCARD_HOSTS:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def refuse_open_bind(binds: Iterable[str], settings: Settings) -> str | None:
    """Why the web must not start on these addresses, or None when it may."""
    exposed = [b for b in binds if not is_loopback(b)]
    if exposed and not settings.callers() and not settings.allow_anonymous:
        return (f"refusing to listen on {', '.join(exposed)} with no API token: anyone on the "
                "network could trigger and cancel test runs. Set API_TOKEN or API_TOKENS, bind "
                "127.0.0.1, or set ALLOW_ANONYMOUS=true to accept that.")
    return None
