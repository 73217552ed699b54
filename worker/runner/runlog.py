"""A run's own log: what the workflow body logs through `ctx.logger` lands in the run's
`logs` in Redis (capped at TEST_RUN_MAX_LOG_LINES), each line stamped in UTC, in batches
(`PendingLines`: a round trip per batch, not per line)."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from ..core.errors import REDIS_OUTAGES
from ..core.events import clip_line
from ..core.keys import workflow_of

if TYPE_CHECKING:  # the store is only handed through the log record
    from ..core.store import RunStore

RUN_LOGGER = "worker.workflows.run"


class RunLogHandler(logging.Handler):
    """Hands a workflow's log lines to its run's pending batch (`PENDING`): no Redis call per
    line; a Redis error never fails the run."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(UTCFormatter("%(asctime)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        store: RunStore | None = getattr(record, "testrun_store", None)
        run_id: str | None = getattr(record, "run_id", None)
        if store is None or run_id is None:
            return
        try:
            PENDING.add(store, run_id, self.format(record))
        except Exception:  # noqa: BLE001 - a bug of ours: logging prints its traceback
            self.handleError(record)


#: lines a batch carries at most, and how long a line waits for company before it is written
BATCH_LINES = 100
BATCH_DELAY_S = 0.1


class PendingLines:
    """A pool process's run log lines not yet in Redis, by run: written in batches (one
    append_log.lua call each, one round trip), when a run has BATCH_LINES waiting, when its
    oldest line has waited BATCH_DELAY_S (a thread of this process, started with the first
    line), and when the run's body returns or raises (`flush`, from the task). A run that logs
    a lot costs a round trip per batch, not per line; a live reader sees a line within
    BATCH_DELAY_S. The price: a process killed outright (the hard time limit, a cancel's kill,
    an OOM) loses the lines of its last BATCH_DELAY_S, which a line-per-call log would have
    written."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: held while a batch is written, so one run's batches reach Redis in order
        self._writing = threading.Lock()
        self._runs: dict[str, tuple[RunStore, list[str]]] = {}
        self._due = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def add(self, store: RunStore, run_id: str, line: str) -> None:
        with self._lock:
            found = self._runs.get(run_id)
            if found is None:
                found = self._runs[run_id] = (store, [])
            found[1].append(line)
            full = len(found[1]) >= BATCH_LINES
        if full:
            self.flush(run_id)
        else:
            self._timer()
            self._due.set()

    def flush(self, run_id: str) -> None:
        """Write the run's waiting lines now (its body ended, or a batch is full)."""
        with self._writing:
            with self._lock:
                found = self._runs.pop(run_id, None)
            if found is not None:
                _write(found[0], run_id, found[1])

    def flush_all(self) -> None:
        with self._writing:
            with self._lock:
                runs, self._runs = self._runs, {}
            for run_id, (store, lines) in runs.items():
                _write(store, run_id, lines)

    def _timer(self) -> None:
        """The flushing thread of this process (a pool process forked after the last one
        started its own gets a new one)."""
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._loop, daemon=True,
                                            name="testrun-log-batches")
            self._thread.start()

    def _loop(self) -> None:
        while True:
            self._due.wait()
            self._due.clear()
            # the first line of a batch waits for company; lines added meanwhile go with it
            time.sleep(BATCH_DELAY_S)
            try:
                self.flush_all()
            except Exception:  # noqa: BLE001 - never end the thread: the next batch tries again
                logging.getLogger(__name__).exception("could not write run log lines")


def _write(store: RunStore, run_id: str, lines: list[str]) -> None:
    """The lines through append_log.lua, capped as RunStore.append_log caps one."""
    settings, workflow_id = store.settings, workflow_of(run_id)
    if workflow_id is None:
        return
    try:
        store.connection.scripts.append_log(
            store.keys, workflow_id, run_id,
            [clip_line(line, settings.max_log_line) for line in lines],
            max_lines=settings.max_log_lines, max_bytes=settings.max_log_bytes,
            retention_s=settings.retention)
        if run_id in _dropping:  # Redis is back: a later outage warns again
            _dropping.discard(run_id)
    except REDIS_OUTAGES as exc:
        # Redis away (restarting, a partition): the lines are lost, the run goes on. One line
        # in the worker's log, not a traceback per log line (a workflow that logs every
        # second would print one each second until Redis is back)
        _warn_dropped(run_id, exc)


#: this process's waiting lines (each pool process has its own)
PENDING = PendingLines()

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
