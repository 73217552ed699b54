"""The alert rules (deploy/prometheus/alerts.yml): valid for Prometheus (`promtool check rules`),
their unit tests pass (`promtool test rules` over input series), every alert is tested both
firing and quiet, and every metric a rule reads is one the service exports — so renaming a
metric breaks here, not silently on a night the alert should have fired.

promtool is Debian's `prometheus` package, installed by `make test` when missing (as root);
without it these tests skip and say so."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from web.metrics import web_metrics
from worker.core.gauges import Live, LiveState, limits
from worker.core.metrics import metrics
from worker.core.settings import Settings
from worker.core.status import RunStatus

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
#: metrics a rule may read before the code that exports them lands (none now)
PENDING: set[str] = set()
METRIC = re.compile(r"\b(testrun_[a-z_]+)\b")

promtool = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    promtool is None, reason="no promtool: `make test` installs Debian's prometheus package "
                             "when run as root")


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert promtool is not None
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60,
                          cwd=RULES.parent)


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"]
            for rule in group["rules"]]


@needs_promtool
def test_promtool_accepts_the_rules():
    done = run_promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


@needs_promtool
def test_the_rules_unit_tests_pass():
    done = run_promtool("test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_is_tested_firing_and_quiet():
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert alerts, "no alert in the rules"
    assert alerts - fires == set(), f"never tested firing: {sorted(alerts - fires)}"
    assert alerts - quiet == set(), f"never tested quiet: {sorted(alerts - quiet)}"


def exported() -> set[str]:
    """Every sample name the web and the worker export: the lifecycle's counters,
    histograms and summary and the web's own (one registry per process), and the live gauges."""
    web_metrics()  # the web's own register beside the lifecycle's
    families = list(metrics().registry.collect())
    queued = RunStatus.QUEUED.value
    live = Live(1, {queued: 1}, 1, 0, {queued: 1.0}, True, limits(Settings()))
    families += list(LiveState(lambda: live).collect())
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
                "summary": ("_count", "_sum"), "gauge": ("",)}
    return {family.name + suffix for family in families for suffix in suffixes[family.type]}


def test_every_metric_a_rule_reads_is_exported():
    read = {name for rule in rules() for name in METRIC.findall(rule["expr"])}
    read = {name for name in read if not name.startswith("testrun:")}
    missing = read - exported() - PENDING
    assert not missing, f"rules read metrics nothing exports: {sorted(missing)}"
    assert PENDING <= read, "a pending metric no rule reads any more: drop it from PENDING"
