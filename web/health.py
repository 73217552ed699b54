"""Liveness and readiness: /healthz says the process answers, /readyz that Redis and the broker
do (503 naming what is unreachable)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from .api import service

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    checks = {what.value: state for what, state in service().readiness().items()}
    down = sorted(name for name, state in checks.items() if state != "ok")
    if down:
        resp = jsonify({"error": "not_ready", "message": f"unreachable: {', '.join(down)}",
                        "checks": checks})
        resp.status_code = 503
        return resp
    return jsonify({"status": "ready", "checks": checks})
