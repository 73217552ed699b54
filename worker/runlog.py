"""A run's own log: what the workflow body logs through `ctx.logger` lands in the run's
`logs` in Redis (capped at TEST_RUN_MAX_LOG_LINES), each line stamped in UTC."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the store is only handed through the log record
    from .store import RunStore

RUN_LOGGER = "worker.workflows.run"


class RunLogHandler(logging.Handler):
    """Appends a workflow's log lines to its run's `logs`; a Redis error never fails the run."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(UTCFormatter("%(asctime)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        store: RunStore | None = getattr(record, "testrun_store", None)
        run_id: str | None = getattr(record, "run_id", None)
        if store is None or run_id is None:
            return
        try:
            store.append_log(run_id, self.format(record))
        except Exception:  # noqa: BLE001
            self.handleError(record)


class UTCFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + (
            f".{int(record.msecs):03d}Z"
        )


def run_logger(store: RunStore, run_id: str, workflow_id: str) -> logging.LoggerAdapter:
    """The `ctx.logger` of one run: its lines go to that run's log (and propagate as usual)."""
    logger = logging.getLogger(RUN_LOGGER)
    if not any(isinstance(h, RunLogHandler) for h in logger.handlers):
        logger.addHandler(RunLogHandler())
        logger.setLevel(logging.DEBUG)
    return logging.LoggerAdapter(
        logger, {"run_id": run_id, "workflow_id": workflow_id, "testrun_store": store}
    )
