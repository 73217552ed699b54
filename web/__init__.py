"""The HTTP face of the service: `create_app()` for gunicorn, tests and `flask --app web`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Request, Response, current_app
from flask_openapi3 import Info, OpenAPI
from pydantic import ValidationError

from worker.client.service import TestRunService
from worker.core.celery_app import create_celery
from worker.core.logs import configure_logging
from worker.core.settings import Settings

from . import (
    api,
    auth,
    bodies,
    errors,
    events,
    exposure,
    fast,
    health,
    metrics,
    openapi,
    page,
    validation,
    waits,
)
from .encoding import FastJSON
from .schemas import (
    MAX_BODY_BYTES,
    MAX_DEPTH,
    InvalidRequestBody,
    invalid_request,
    parse_json_body,
)

VERSION = "1"


class ApiRequest(Request):
    """Reads a JSON body our way for the models: an empty body is `{}`, and malformed JSON,
    a number that is not finite, an input nested deeper than TEST_RUN_MAX_INPUT_DEPTH or not an
    object is a 400 (not silently None); a body not declared as JSON was refused before
    (web/bodies.py, 415). The size limit (413) applies while the body is read."""

    def get_json(self, force: bool = False, silent: bool = False,
                 cache: bool = True) -> Any:
        return parse_json_body(self.get_data(cache=True), current_app.config[MAX_DEPTH])


class App(OpenAPI):
    """flask-openapi3's app with the JSON provider that builds its encoder once
    (web/encoding.py), and the sync check of hooks and views made once per function: Flask
    asks `inspect` whether each one is a coroutine on every request (none of ours is)."""

    json_provider_class = FastJSON

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        found = _SYNC.get(func)
        if found is None:
            found = super().ensure_sync(func)
            if len(_SYNC) < _SYNC_MAX:
                _SYNC[func] = found
        return found


#: every hook and view, as ensure_sync answered for it (a few dozen functions per process;
#: bounded, should anything hand it a new function each time)
_SYNC_MAX = 1000
_SYNC: dict[Callable[..., Any], Callable[..., Any]] = {}


def _validation_failed(exc: ValidationError) -> Response:
    return errors.render(invalid_request(exc))


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Config layers: defaults → environment → `test_config` (keys are the variable names,
    e.g. `{"TEST_RUN_QUEUE": "q1"}`)."""
    settings = Settings.from_env(overrides=test_config)
    configure_logging(log_format=settings.log_format)
    app = App(
        __name__, info=Info(title="Workflow test runs", version=VERSION),
        security_schemes={"bearer": {"type": "http", "scheme": "bearer",
                                     "description": "API_TOKEN / API_TOKENS, when set"}},
        validation_error_status=400, validation_error_model=InvalidRequestBody,
        validation_error_callback=_validation_failed,
        doc_ui=False, static_folder=None)
    app.request_class = ApiRequest
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY_BYTES)
    app.config[MAX_DEPTH] = settings.max_input_depth
    celery = create_celery(settings, fail_fast=True)
    app.extensions["testruns"] = TestRunService(celery)

    errors.register(app)
    exposure.configure(app, settings)
    auth.register(app, settings.callers())
    bodies.register(app, settings.cors_origins)
    events.register(app, settings.max_streams, settings.max_streams_per_client)
    waits.register(app, settings.max_waiters)
    app.register_api(api.bp)
    app.register_api(health.bp)
    page.register(app, settings.cors_origins)
    openapi.register(app)
    validation.install(app)  # after every register_api: the document is made by then
    metrics.register(app)
    # the WSGI layers before Flask, outermost first: the client's address behind the front,
    # then the trigger's fast path, which hands Flask every other request (web/fast.py)
    app.wsgi_app = exposure.FrontAddress(  # type: ignore[method-assign]
        fast.wrap(app, settings, app.wsgi_app))
    return app
