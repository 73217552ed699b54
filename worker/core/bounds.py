"""The most Redis memory one run, and one workflow, can take: computed from the caps, so
docs/guarantees.md can state a bound rather than an estimate
(tests/integration/test_bounded_storage.py fills runs to every cap and checks Redis' own MEMORY
USAGE against it).

What is capped, and where: the input (TEST_RUN_MAX_INPUT_BYTES, at trigger), the result
(TEST_RUN_MAX_RESULT_BYTES, in the task), the error text (MAX_ERROR_CHARS characters, at most
4 bytes each), the log (TEST_RUN_MAX_LOG_BYTES written in all, TEST_RUN_MAX_LOG_LINES lines;
append_log.lua), which is kept twice (the `logs` list and the event stream), and the runs per
workflow (TEST_RUN_MAX_RUNS_PER_WORKFLOW; admit.lua). Everything else in a record is a few
fixed-size fields.
"""

from __future__ import annotations

from .keys import Keys
from .settings import Settings

#: an error text longer than this is cut (a workflow's exception message is any size it likes,
#: and the record is kept for the retention period): worker/runner/outcomes.py
MAX_ERROR_CHARS = 4096
#: Redis' allocator (jemalloc) rounds each allocation up to its size class, at most 25 %
ALLOC_SLACK = 1.25
#: every other field of a record (ids, times, worker and token names, release accounting) and
#: the hash's own overhead
RECORD_FIXED = 4096
#: the error text's cut marker ("… [N more characters cut]")
ERROR_MARKER = 64
#: append_log.lua's LOG_CUT_MARKER, written once when the byte cap is reached
LOG_MARKER = 66
#: per log line, in the list and the stream together, beyond the line's own bytes
LINE_OVERHEAD = 48
#: the list's and the stream's own structures, and up to four status events
LOG_FIXED = 8192
#: per run in the workflow's index, and its idempotency key (a 255-character key name, the run id)
INDEX_ENTRY = 128
IDEMPOTENCY_KEY = 1024
#: the slot key and the index's own structure
WORKFLOW_FIXED = 16384


def run_bytes(settings: Settings) -> int:
    """The most one run's record, log and event stream can take."""
    record = ALLOC_SLACK * (settings.max_input_bytes + settings.max_result_bytes
                            + 4 * MAX_ERROR_CHARS + ERROR_MARKER) + RECORD_FIXED
    logs = (2 * ALLOC_SLACK * (settings.max_log_bytes + LOG_MARKER)
            + LINE_OVERHEAD * settings.max_log_lines + LOG_FIXED)
    return int(record + logs)


def workflow_bytes(settings: Settings) -> int:
    """The most one workflow's runs can take: TEST_RUN_MAX_RUNS_PER_WORKFLOW of them."""
    per_run = run_bytes(settings) + INDEX_ENTRY + IDEMPOTENCY_KEY
    return settings.max_runs_per_workflow * per_run + WORKFLOW_FIXED


def run_keys(keys: Keys, workflow_id: str, run_id: str) -> tuple[str, str, str]:
    """The keys one run owns (its idempotency key aside)."""
    return (keys.run(workflow_id, run_id), keys.logs(workflow_id, run_id),
            keys.events(workflow_id, run_id))
