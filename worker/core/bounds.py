"""The most Redis memory one run, and one workflow, can take: computed from the caps, so
docs/guarantees.md can state a bound rather than an estimate
(tests/integration/test_bounded_storage.py fills runs to every cap and checks Redis' own MEMORY
USAGE against it).

What is capped, and where: the input (TEST_RUN_MAX_INPUT_BYTES, at trigger), the result
(TEST_RUN_MAX_RESULT_BYTES, in the task), the error text (MAX_ERROR_CHARS characters, at most
4 bytes each), the log (TEST_RUN_MAX_LOG_BYTES written in all, TEST_RUN_MAX_LOG_LINES lines;
append_log.lua), which is kept twice (the `logs` list and the event stream), and the runs per
workflow (TEST_RUN_MAX_RUNS_PER_WORKFLOW; admit.lua). Everything else in a record is a few
fixed-size fields. Webhooks add, per run: its callback_url (2,048 characters at most), its
`deliveries` (2 × WEBHOOK_MAX_ATTEMPTS entries at most: delivery_log.lua) and up to two
deliveries under `{_webhooks}`, each keeping the body it sends (the run, its log included)
while it is retried, then only its few fields for DONE_KEPT_S; per workflow: the endings outbox
(OUTBOX_MAX entries: lib.lua).
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
#: a callback_url (web/schemas/requests.py), an entry of a run's `deliveries` (its error text is
#: cut at 300 characters: worker/runner/delivery.py), a delivery's own fields
CALLBACK_URL = 2048
DELIVERY_ENTRY = 1024
DELIVERY_FIXED = 1024
#: lib.lua's OUTBOX_MAX, and one entry of it (a run id and a score)
OUTBOX_MAX = 1000
OUTBOX_ENTRY = 192
#: the webhook targets of one ending: WEBHOOK_URL and the run's callback_url
TARGETS = 2


def run_bytes(settings: Settings) -> int:
    """The most one run's record, log and event stream can take."""
    record = ALLOC_SLACK * (settings.max_input_bytes + settings.max_result_bytes
                            + 4 * MAX_ERROR_CHARS + ERROR_MARKER + CALLBACK_URL
                            + 2 * settings.webhook_max_attempts * DELIVERY_ENTRY) + RECORD_FIXED
    logs = (2 * ALLOC_SLACK * (settings.max_log_bytes + LOG_MARKER)
            + LINE_OVERHEAD * settings.max_log_lines + LOG_FIXED)
    return int(record + logs)


def deliveries_bytes(settings: Settings) -> int:
    """The most one run's webhook deliveries can take (under `{_webhooks}`) while they are
    retried: each keeps the body it sends, the run as GET returns it (its log included, as
    JSON: up to 6 bytes a byte of escapes). Done, a delivery drops its body."""
    body = (settings.max_input_bytes + settings.max_result_bytes + 4 * MAX_ERROR_CHARS
            + 6 * (settings.max_log_bytes + LINE_OVERHEAD * settings.max_log_lines)
            + RECORD_FIXED)
    return int(TARGETS * (ALLOC_SLACK * body + DELIVERY_FIXED))


def workflow_bytes(settings: Settings) -> int:
    """The most one workflow's runs can take: TEST_RUN_MAX_RUNS_PER_WORKFLOW of them and the
    endings outbox (deliveries being retried come on top: `deliveries_bytes` each)."""
    per_run = run_bytes(settings) + INDEX_ENTRY + IDEMPOTENCY_KEY
    return (settings.max_runs_per_workflow * per_run + OUTBOX_MAX * OUTBOX_ENTRY
            + WORKFLOW_FIXED)


def run_keys(keys: Keys, workflow_id: str, run_id: str) -> tuple[str, str, str]:
    """The keys one run owns (its idempotency key aside)."""
    return (keys.run(workflow_id, run_id), keys.logs(workflow_id, run_id),
            keys.events(workflow_id, run_id))
