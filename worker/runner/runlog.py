"""A run's own log: what the workflow body logs through `ctx.logger` lands in the run's
`logs` in Redis (capped at TEST_RUN_MAX_LOG_LINES), each line stamped in UTC."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from ..core.errors import REDIS_OUTAGES

if TYPE_CHECKING:  # the store is only handed through the log record
    from ..core.store import RunStore

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
            if run_id in _dropping:  # Redis is back: a later outage warns again
                _dropping.discard(run_id)
        except REDIS_OUTAGES as exc:
            # Redis away (restarting, a partition): the line is lost, the run goes on. One line
            # in the worker's log, not a traceback per log line (a workflow that logs every
            # second would print one each second until Redis is back)
            _warn_dropped(run_id, exc)
        except Exception:  # noqa: BLE001 - a bug of ours: logging prints its traceback
            self.handleError(record)


_dropped_lock = threading.Lock()
#: runs whose lines are being dropped now (a warning was printed; cleared when one gets through)
_dropping: set[str] = set()


def _warn_dropped(run_id: str, exc: BaseException) -> None:
    with _dropped_lock:
        if run_id in _dropping:
            return
        _dropping.add(run_id)
        if len(_dropping) > 1000:  # a bound, not a record: the warning may come again
            _dropping.clear()
    logging.getLogger(__name__).warning(
        "test run %s: its log lines are dropped while Redis does not answer (%s: %s)",
        run_id, type(exc).__name__, exc)


class UTCFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + (
            f".{int(record.msecs):03d}Z"
        )


#: C0 control characters and DEL, as they are written into the worker's own log
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)} | {
    0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}


def escape_controls(text: str) -> str:
    """`text` on one line: CR, LF and every other control character escaped, so a workflow
    cannot forge lines (or terminal escapes) in the worker's own log."""
    return text.translate(_ESCAPES)


class EscapedForwarder(logging.Handler):
    """Hands a copy of each run log record on to the worker's own logging (the parent logger
    and, through it, the root), with its message, and any traceback folded into it, on one
    escaped line. The run's own log (RunLogHandler) keeps the text as written."""

    def __init__(self, parent: logging.Logger) -> None:
        super().__init__(logging.DEBUG)
        self.parent = parent

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            if record.stack_info:
                text += "\n" + record.stack_info
            copy = logging.makeLogRecord(record.__dict__)
            copy.msg, copy.args = escape_controls(text), None
            copy.exc_info = copy.exc_text = copy.stack_info = None
            self.parent.handle(copy)
        except Exception:  # noqa: BLE001
            self.handleError(record)


def run_logger(store: RunStore, run_id: str, workflow_id: str) -> logging.LoggerAdapter:
    """The `ctx.logger` of one run: its lines go to that run's log as written, and to the
    worker's own log escaped onto one line each (no raw propagation)."""
    logger = logging.getLogger(RUN_LOGGER)
    if not any(isinstance(h, RunLogHandler) for h in logger.handlers):
        logger.addHandler(RunLogHandler())
        logger.addHandler(EscapedForwarder(logging.getLogger(RUN_LOGGER.rsplit(".", 1)[0])))
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
    return logging.LoggerAdapter(
        logger, {"run_id": run_id, "workflow_id": workflow_id, "testrun_store": store}
    )
