"""The HTTP face of the service: `create_app()` for gunicorn, tests and `flask --app web`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, jsonify

from worker.app import create_celery
from worker.logs import configure_logging
from worker.service import TestRunService
from worker.settings import Settings

from . import api, auth, errors, exposure, health
from .schemas import MAX_BODY_BYTES


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Config layers: defaults → environment → `test_config` (keys are the variable names,
    e.g. `{"TEST_RUN_QUEUE": "q1"}`)."""
    configure_logging()
    app = Flask(__name__)
    settings = Settings.from_env(overrides=test_config)
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY_BYTES)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    celery = create_celery(settings, fail_fast=True)
    app.extensions["testruns"] = TestRunService(celery)

    errors.register(app)
    exposure.configure(app, settings)
    auth.register(app, settings.api_token)
    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)

    @app.get("/")
    def index() -> Any:
        return jsonify({
            "service": "workflow test runs",
            "workflows": "/api/workflows",
            "trigger": "POST /api/workflows/<id>/test-runs",
            "status": "/api/test-runs/<run_id>",
        })

    return app
