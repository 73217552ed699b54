"""Liveness and readiness: /healthz says the process answers, /readyz that Redis and the broker
do (503 naming what is unreachable)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    service = current_app.extensions["testruns"]
    checks: dict[str, str] = {}
    try:
        service.tracker.ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = f"unreachable: {type(exc).__name__}: {exc}"
    try:
        with service.celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=service.settings.io_timeout)
        checks["broker"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["broker"] = f"unreachable: {type(exc).__name__}: {exc}"
    down = sorted(name for name, state in checks.items() if state != "ok")
    if down:
        resp = jsonify({"error": "not_ready", "message": f"unreachable: {', '.join(down)}",
                        "checks": checks})
        resp.status_code = 503
        return resp
    return jsonify({"status": "ready", "checks": checks})
