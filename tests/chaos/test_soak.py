"""Soak: many runs over 20 workflows with mixed outcomes (succeed, fail, sleep,
hang, cancel) while worker processes are killed at random. At the end every run is terminal,
no slot is held (a cancelled body's within a lease, if its worker was killed too), and no
workflow ever had two runs executing at once — checked against the times the workflow bodies
themselves recorded and the times this test killed processes, with no slack for cancels: a
cancelled body's slot passes only once it has stopped. Each run is judged by its record as
first read terminal: past TEST_RUN_MAX_RUNS_PER_WORKFLOW runs of a workflow the oldest records
are deleted, and the check is that exactly those are gone.

The cancel-then-trigger rounds: every run is cancelled at a random moment (queued or running)
and the next is triggered right after it with `on_conflict=queue` — the pending run that takes
the slot once the cancelled body is gone — under the same kills.

`make test` runs SOAK_RUNS (default 500; 300 on another broker) and SOAK_ROUNDS rounds (300;
100 on another broker); `make soak` runs 5,000 and 1,000 rounds."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from tests.support.api import body_events, ts
from tests.support.procs import Worker, alive, wait_for
from web import create_app
from worker.core.settings import Settings
from worker.core.status import TERMINAL, ErrorType, RunStatus

pytestmark = [pytest.mark.broker_matrix, pytest.mark.cluster_tracking]

WORKFLOWS = [f"soak-{i:02d}" for i in range(20)]
HEARTBEAT_TTL = 3.0
MODES = ["succeed"] * 45 + ["fail"] * 20 + ["sleep"] * 20 + ["hang"] * 5 + ["cancel"] * 10
#: the rounds: every run is cancelled, and followed by a queue trigger
ROUNDS = ["cancel"]


def describe(pids: list[int]) -> str:
    """What each process is and where it waits (its status, kernel wait channel and Python
    stack, as far as they can be read): why a process outlived its worker."""
    out = []
    for pid in pids:
        parts = [f"pid {pid}"]
        for name in ("status", "wchan", "stack"):
            try:
                text = Path(f"/proc/{pid}/{name}").read_text()
            except OSError as exc:
                text = f"({exc.strerror})"
            if name == "status":
                text = " ".join(line for line in text.splitlines()
                                if line.startswith(("State", "PPid", "SigBlk", "SigCgt")))
            parts.append(f"{name}: {text.strip()}")
        try:
            parts.append(subprocess.run(["py-spy", "dump", "--pid", str(pid)], text=True,
                                        capture_output=True, timeout=20).stdout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            parts.append(f"(no py-spy dump: {exc})")
        out.append("\n".join(parts))
    return "\n".join(out)


class Killer:
    """Kills a pool child or a worker's main process now and then; remembers when each pid
    stopped executing, so the overlap check knows where a killed body ended."""

    def __init__(self, config: dict[str, str], rng: random.Random, n_workers: int) -> None:
        self.config = config
        self.rng = rng
        self.workers = [Worker(config, concurrency=3) for _ in range(n_workers)]
        for w in self.workers:
            w.wait_ready()
        self.died_at: dict[int, float] = {}
        self.kills: Counter[str] = Counter()
        self.retired: list[Worker] = []

    def strike(self) -> None:
        worker = self.rng.choice(self.workers)
        if self.rng.random() < 0.6:
            # not a zombie: its body already stopped (a cancel's kill, not yet reaped), and a
            # kill time recorded for it would stretch that body past its real end
            children = [p for p in worker.children() if alive(p)]
            if children:
                pid = self.rng.choice(children)
                self.died_at[pid] = time.time()
                os.kill(pid, signal.SIGKILL)
                self.kills["pool child"] += 1
            return
        children = [p for p in worker.children() if alive(p)]  # not already-dead zombies
        now = time.time()
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait_exit(10)
        for pid in children:
            self.died_at[pid] = now
        try:
            wait_for(lambda: all(not alive(p) for p in children), 10, "orphaned children to die")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; {describe([p for p in children if alive(p)])}") from None
        for pid in children:  # the latest a body on them could have run
            self.died_at[pid] = time.time()
        self.kills["worker main"] += 1
        self.workers.remove(worker)
        self.retired.append(worker)
        self.workers.append(Worker(self.config, concurrency=3).wait_ready())

    def close(self) -> None:
        for w in self.workers + self.retired:
            w.kill_group()


def soak(config: dict[str, str], redis_client, total: int, seed: int,
         rounds_wanted: int = 0) -> None:
    """`total` runs; or, with `rounds_wanted`, that many cancel-then-trigger rounds (every
    run cancelled, the next one triggered right after it)."""
    modes = ROUNDS if rounds_wanted else MODES
    rng = random.Random(seed)
    client = create_app(config).test_client()
    killer = Killer(config, rng, n_workers=2)
    in_flight: dict[str, list[str]] = {wf: [] for wf in WORKFLOWS}  # oldest first
    # run → (delay, after it is seen running?, when: None until it runs) of its cancel
    cancels: dict[str, tuple[float, bool, float | None]] = {}
    admitted: list[str] = []
    # each run's record as first read terminal: the record cap may delete it later
    ended: dict[str, dict] = {}
    conflicts = rounds = 0
    unavailable: list[str] = []  # runs a 503 answered for: admitted, then unwound
    started = time.monotonic()
    next_strike = started + rng.uniform(1, 3)

    def due(rid: str, status: str) -> bool:
        """Its cancel is due (then it is taken off the list): `delay` after its admission, or
        after it was first seen running."""
        delay, after_running, at = cancels[rid]
        if at is None and status == RunStatus.RUNNING:
            at = time.monotonic() + delay
            cancels[rid] = (delay, after_running, at)
        if at is None or time.monotonic() < at:
            return False
        del cancels[rid]
        return True

    def admit(wf: str, policy: str = "reject") -> int:
        """Trigger the next run of `wf`: the answer's status (202, 409 or 503)."""
        mode = rng.choice(modes)
        body = {"mode": "sleep" if mode == "cancel" else mode,
                "seconds": round(rng.uniform(0.05, 0.8), 2)}
        resp = client.post(f"/api/workflows/{wf}/test-runs", json={"input": body},
                           query_string={"on_conflict": policy})
        if resp.status_code == 409:  # the previous run's body is still stopping
            return 409
        if resp.status_code == 503:
            # the broker did not confirm the publish in time (RabbitMQ under the load of a
            # soak): the run was admitted, then unwound — it must read failed, enqueue_failed
            # (or run, if its message got out after all) and free its slot like any other
            assert resp.get_json()["error"] == "queue_unavailable", resp.get_json()
            unwound = client.get(f"/api/workflows/{wf}/test-runs",
                                 query_string={"limit": 1}).get_json()["runs"]
            rid = unwound[0]["run_id"] if unwound else None
            if rid and rid not in in_flight[wf] and rid not in ended:
                unavailable.append(rid)
                admitted.append(rid)
                in_flight[wf].append(rid)
            return 503
        assert resp.status_code == 202, resp.get_json()
        rid = resp.get_json()["run_id"]
        admitted.append(rid)
        in_flight[wf].append(rid)
        if mode == "cancel":
            delay, after_running = rng.uniform(0, 0.5), rng.random() < 0.5
            cancels[rid] = (delay, after_running,
                            None if after_running else time.monotonic() + delay)
        return 202

    try:
        def more() -> bool:
            return rounds < rounds_wanted if rounds_wanted else len(admitted) < total

        while more() or any(in_flight.values()):
            if time.monotonic() - started > 3000:
                raise AssertionError(f"soak did not finish: {len(admitted)} admitted")
            for wf in WORKFLOWS:
                for rid in list(in_flight[wf]):
                    run = client.get(f"/api/test-runs/{rid}").get_json()
                    if run["status"] in TERMINAL:
                        ended[rid] = run
                        in_flight[wf].remove(rid)
                    elif rid in cancels and due(rid, run["status"]):
                        assert client.post(f"/api/test-runs/{rid}/cancel").status_code in (
                            202, 409)
                        if rounds_wanted and more():
                            # the round: the next run right away, pending until the slot is
                            # free (it supersedes a pending one, if any)
                            if admit(wf, "queue") == 202:
                                rounds += 1
                if in_flight[wf] or not more():
                    continue
                if admit(wf) == 409:
                    conflicts += 1
            if time.monotonic() >= next_strike and more():
                killer.strike()
                next_strike = time.monotonic() + rng.uniform(1, 3)
            time.sleep(0.01)  # pacing of the driver loop, not synchronisation
        elapsed = time.monotonic() - started

        runs = [ended[rid] for rid in admitted]
        statuses = Counter(r["status"] for r in runs)
        trimmed = check_record_cap(client, admitted, ended, config)
        print(f"\nsoak: {len(admitted)} runs in {elapsed:.1f}s, {statuses}, "
              f"kills {dict(killer.kills)}, 409s while catching up {conflicts}, "
              f"cancel-then-trigger rounds {rounds}, records trimmed by the cap {trimmed}, "
              f"503s (publish not confirmed in time) {len(unavailable)}")
        assert all(r["status"] in TERMINAL for r in runs)
        for rid in unavailable:  # unwound: failed, enqueue_failed — unless its message got out
            assert (ended[rid]["error_type"] == ErrorType.ENQUEUE_FAILED
                    or ended[rid]["started_at"] is not None), ended[rid]
        # a run cancelled while running keeps its slot until its worker confirms the body
        # gone; when that worker was killed too there is no one left to confirm, and the slot
        # passes when its lease lapses (a heartbeat's sweep, an interval later): the last
        # round's slot may still be held that long after its run read `cancelled`
        lease_bound = HEARTBEAT_TTL + HEARTBEAT_TTL / 3 + 2.0
        wait_for(lambda: all(not held(client, wf) for wf in WORKFLOWS), lease_bound,
                 "every workflow's slot and pending run to be free within a lease")
        assert not list(redis_client.scan_iter(
            match=f"{config['TEST_RUN_KEY_PREFIX']}:{{*}}:slot"))
        assert sum(killer.kills.values()) > 0
        check_no_overlap(runs, body_events(redis_client, config), killer.died_at)
        assert rounds >= rounds_wanted
    finally:
        killer.close()


def held(client, workflow_id: str) -> list[str]:
    """The runs that hold the workflow's slot or wait as its pending run."""
    state = client.get(f"/api/workflows/{workflow_id}").get_json()
    return [r for r in (state["active_run_id"], state["pending_run_id"]) if r]


def check_record_cap(client, admitted: list[str], ended: dict[str, dict],
                     config: dict[str, str]) -> int:
    """TEST_RUN_MAX_RUNS_PER_WORKFLOW keeps each workflow's newest runs: those still read as
    the terminal record first seen, the older ones are gone (404). How many were trimmed."""
    cap = Settings.from_env(overrides=config).max_runs_per_workflow
    by_workflow: dict[str, list[str]] = defaultdict(list)
    for rid in admitted:  # one run at a time per workflow: admission order is index order
        by_workflow[ended[rid]["workflow_id"]].append(rid)
    trimmed = 0
    for rids in by_workflow.values():
        gone, kept = rids[:-cap], rids[-cap:]
        for rid in gone:
            assert client.get(f"/api/test-runs/{rid}").status_code == 404, rid
        for rid in kept:
            now = client.get(f"/api/test-runs/{rid}").get_json()
            assert now["status"] == ended[rid]["status"] in TERMINAL, (now, ended[rid])
        trimmed += len(gone)
    return trimmed


def check_no_overlap(runs: list[dict], events: list[dict], died_at: dict[int, float]) -> None:
    by_run: dict[str, dict[str, dict]] = defaultdict(dict)
    for e in events:
        by_run[e["run_id"]][e["event"]] = e
    status = {run["run_id"]: run["status"] for run in runs}
    intervals: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for run in runs:
        ev = by_run.get(run["run_id"], {})
        if "start" not in ev:
            continue  # never executed (cancelled while queued, expired)
        start = ev["start"]["t"]
        if "end" in ev:
            end = ev["end"]["t"]
        else:
            pid = ev["start"]["pid"]
            killed = died_at.get(pid)
            # a body its soft time limit ended raised inside its own pool process, which lives
            # on and runs other runs: a later kill of that pid is not this body's end (taken
            # for it, a run of the same workflow started after read as a false overlap)
            soft = (run["status"] == RunStatus.TIMED_OUT
                    and "soft time limit" in (run.get("error") or ""))
            end = killed if killed and killed > start and not soft else ts(run["finished_at"])
        intervals[run["workflow_id"]].append((start, end, run["run_id"]))
    executed = 0
    for wf, spans in intervals.items():
        spans.sort()
        executed += len(spans)
        for (_s1, e1, r1), (s2, _e2, r2) in zip(spans, spans[1:], strict=False):
            assert e1 <= s2, (
                f"{wf}: {r1} ({status[r1]}) ran until {e1:.3f} but {r2} ({status[r2]}) "
                f"started at {s2:.3f}")
    assert executed > 0



def soak_config(config: dict[str, str]) -> dict[str, str]:
    """Every soak's limits: short enough that the time-limit paths come round in seconds."""
    return dict(config, TEST_RUN_TIME_LIMIT="2", TEST_RUN_SOFT_TIME_LIMIT="1.5",
                TEST_RUN_HEARTBEAT_TTL=str(HEARTBEAT_TTL), TEST_RUN_QUEUE_TIMEOUT="20")


@pytest.mark.timeout(600)
def test_soak_mixed_outcomes_with_random_kills(config, redis_client):
    # the full count on the default deployment; a shorter one on each other broker
    default = "500" if "CELERY_BROKER_URL" not in config else "300"
    total = int(os.environ.get("SOAK_RUNS", default))
    config = soak_config(config)
    soak(config, redis_client, total, seed=int(os.environ.get("SOAK_SEED", "7")))


@pytest.mark.timeout(600)
def test_cancel_then_trigger_rounds_never_overlap(config, redis_client):
    """Rounds of a cancel (queued or running, at a random moment) followed at once by the
    next trigger (on_conflict=queue), under the kills: no two bodies of a workflow overlap,
    with no slack."""
    # the full count on the default deployment; a shorter one on each other broker
    rounds = int(os.environ.get("SOAK_ROUNDS",
                                "300" if "CELERY_BROKER_URL" not in config else "100"))
    config = soak_config(config)
    soak(config, redis_client, 0, seed=int(os.environ.get("SOAK_SEED", "7")),
         rounds_wanted=rounds)


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_long_cancel_then_trigger_rounds(config, redis_client):
    rounds = int(os.environ.get("LONG_SOAK_ROUNDS", "1000"))
    config = soak_config(config)
    soak(config, redis_client, 0, seed=int(time.time()), rounds_wanted=rounds)


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_long_soak(config, redis_client):
    total = int(os.environ.get("LONG_SOAK_RUNS", "5000"))
    config = soak_config(config)
    soak(config, redis_client, total, seed=int(time.time()))
