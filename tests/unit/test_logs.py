"""LOG_FORMAT: json lines carry the lifecycle's fields and gunicorn's access atoms by name;
anything but text or json is refused at start."""

from __future__ import annotations

import json
import logging

import pytest

from worker.core.errors import SettingsError
from worker.core.lifecycle import LifecycleHooks, LogHooks
from worker.core.logs import JsonFormatter, gunicorn_logconfig
from worker.core.settings import Settings
from worker.core.status import ErrorType, RunStatus


def test_a_lifecycle_line_as_json_has_the_event_run_and_outcome(caplog):
    with caplog.at_level(logging.INFO, logger="worker.lifecycle"):
        LogHooks().finished("wf-1", "wf", RunStatus.FAILED, ErrorType.ERROR, duration_s=1.5)
    line = json.loads(JsonFormatter().format(caplog.records[-1]))
    assert line["event"] == LifecycleHooks.finished.__name__
    assert (line["run_id"], line["workflow_id"]) == ("wf-1", "wf")
    assert (line["status"], line["error_type"], line["duration_s"]) == (
        RunStatus.FAILED.value, ErrorType.ERROR.value, 1.5)
    assert line["level"] == "INFO" and line["logger"] == "worker.lifecycle" and line["time"]


def test_an_access_line_as_json_names_gunicorns_atoms():
    atoms = {"h": "127.0.0.1", "m": "POST", "U": "/api/workflows/echo/test-runs", "q": "",
             "s": "202", "B": "431", "M": "7", "a": "curl/8"}
    record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1,
                               '%(h)s "%(m)s %(U)s" %(s)s', (atoms,), None)
    line = json.loads(JsonFormatter().format(record))
    assert line["method"] == "POST" and line["status"] == 202 and line["bytes"] == 431
    assert line["path"] == "/api/workflows/echo/test-runs" and line["duration_ms"] == 7
    assert "query" not in line  # empty atoms are left out


def test_renewals_are_logged_at_debug_only(caplog):
    with caplog.at_level(logging.INFO, logger="worker.lifecycle"):
        LogHooks().renewed("wf-1", "wf", False)
    assert not caplog.records


def test_log_format_is_text_or_json():
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"LOG_FORMAT": "JSON"}).log_format == "json"
    assert gunicorn_logconfig("text") is None and gunicorn_logconfig("json")
    with pytest.raises(SettingsError, match="LOG_FORMAT"):
        Settings.from_env({"LOG_FORMAT": "xml"})
    with pytest.raises(SettingsError, match="WORKER_METRICS_PORT"):
        Settings.from_env({"WORKER_METRICS_PORT": "70000"})
