"""Flower's own log lines follow LOG_FORMAT too: under `json` every line Flower prints (its
start-up lines, Tornado's, its inspector's warnings, its shutdown) is one JSON object with
`time`, `level`, `logger` and `message`, like the web's and the worker's."""

from __future__ import annotations

import json
import signal

from tests.support.procs import Flower, wait_for


def test_flower_logs_json_lines_under_log_format_json(config):
    flower = Flower(dict(config, LOG_FORMAT="json")).wait_ready()
    try:
        flower.signal(signal.SIGTERM)
        flower.wait_exit(15)
        lines = [line for line in flower.log().splitlines() if line.strip()]
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except ValueError:
                raise AssertionError(f"not a JSON log line from Flower: {line!r}") from None
        assert all({"time", "level", "logger", "message"} <= set(r) for r in records), records
        messages = {(r["logger"], r["message"].split(" ")[0]) for r in records}
        assert ("flower.command", "Visit") in messages, records  # "Visit me at http://…"
        assert any(r["message"].endswith("detected, shutting down") for r in records), records
    finally:
        flower.kill_group()


def test_flower_keeps_its_text_lines_otherwise(config):
    flower = Flower(dict(config, LOG_FORMAT="text")).wait_ready()
    try:
        wait_for(lambda: "Visit me at" in flower.log(), 10, "flower's first line")
        assert not flower.log().lstrip().startswith("{")
    finally:
        flower.kill_group()
