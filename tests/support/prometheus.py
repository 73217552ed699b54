"""A real Prometheus for tests: Debian's `prometheus` binary with a generated configuration that
scrapes the given targets every second and loads the repository's alert rules; queried through
its HTTP API (PromQL, alerts). Killed, with its data directory, at close."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from devtools.redis_server import free_port
from tests.support.procs import ROOT, wait_for

RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
BINARY = shutil.which("prometheus")


class Prometheus:
    def __init__(self, jobs: dict[str, list[str]], interval: str = "1s") -> None:
        """`jobs`: job name → its targets (`host:port`, scraped at /metrics)."""
        assert BINARY is not None
        self.dir = Path(tempfile.mkdtemp(prefix="prometheus-"))
        config = {
            "global": {"scrape_interval": interval, "scrape_timeout": interval,
                       "evaluation_interval": interval},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}
                               for job, targets in jobs.items()],
        }
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.dir / "prometheus.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [BINARY, f"--config.file={self.dir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 30) -> Prometheus:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as resp:
                    return resp.status == 200
            except OSError:
                return False

        wait_for(ready, timeout, "prometheus to be ready", interval=0.2)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def api(self, path: str, **params: str) -> Any:
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=5) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant vector: [{"metric": {...}, "value": [ts, "text"]}, …]."""
        return self.api("query", query=promql)["result"]

    def by(self, promql: str, label: str) -> dict[str, float]:
        """An instant vector as {its `label`: value}."""
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(promql)}

    def alerts(self) -> list[dict[str, Any]]:
        return self.api("alerts")["alerts"]

    def targets_up(self) -> dict[str, float]:
        return self.by("up", "job")

    def close(self) -> None:
        self.proc.kill()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
