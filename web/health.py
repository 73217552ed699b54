"""Liveness and readiness: /healthz says the process answers, /readyz that Redis and the broker
do (503 naming what is unreachable)."""

from __future__ import annotations

from flask import Response, jsonify
from flask_openapi3 import APIBlueprint, Tag

from . import errors
from . import schemas as s
from .api import SERVER, service
from .problems import NotReady

bp = APIBlueprint("health", __name__)
HEALTH = Tag(name="health")


@bp.get("/healthz", tags=[HEALTH], responses={**SERVER, 200: s.Health})
def healthz() -> Response:
    """The process answers."""
    return jsonify({"status": "ok"})


@bp.get("/readyz", tags=[HEALTH], responses={
    **SERVER, 200: s.Readiness, 503: s.one_of(s.NotReadyBody, s.AppUnavailableBody)})
def readyz() -> Response:
    """Redis and the broker answer (503 names what does not); `workers_online`: the workers
    consuming the test-run queue (null when Redis cannot be read)."""
    checks = {what.value: state for what, state in service().readiness().items()}
    down = sorted(name for name, state in checks.items() if state != "ok")
    # workers are not the web's readiness: none online still answers 200, with the number
    online = service().workers_online() if checks.get("redis") == "ok" else None
    if down:
        return errors.render(NotReady(down, checks, online))
    return jsonify({"status": "ready", "checks": checks, "workers_online": online})
