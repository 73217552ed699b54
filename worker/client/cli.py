"""Operator escape hatch: `testruns {list,alive,release,reconcile,check}` (or `python -m worker
…`). `list` shows the workers online (their advertisements) and the slots held; `alive <host>`
is a worker's liveness probe (exit 1 only when Redis answers and its advertisement lapsed).

This module parses the arguments and prints the answer as JSON; what each command does is in
worker/client/operator.py. Not on any request path, so it may SCAN. `release` is recorded on
the run as `forced`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..core import publish, webhooks
from ..core.celery_app import create_celery
from ..core.settings import Settings
from . import operator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="testruns",
                                     description="Inspect and repair test-run slots.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="workers online, and slots held: holder, age, last "
                                "heartbeat, lease left, the pending run")
    alive = sub.add_parser("alive", help="liveness probe: exit 1 if the worker's advertisement "
                                         "lapsed (0 when Redis cannot tell)")
    alive.add_argument("hostname", help="the worker's --hostname, e.g. worker1@host")
    release = sub.add_parser("release", help="force-free a workflow's slot (recorded)")
    release.add_argument("workflow_id")
    sub.add_parser("reconcile", help="free slots of ended runs; promote pending runs into "
                                     "free slots, publish promoted runs a crash left "
                                     "unpublished; settle runs with no slot; hand over "
                                     "endings their webhooks missed")
    sub.add_parser("check", help="check Redis settings that could evict slot keys "
                                 "(exit 1 when they could)")
    args = parser.parse_args(argv)

    celery = create_celery(Settings.from_env(), fail_fast=True)
    publish.install(celery)  # a run promoted by a release here is published from here
    store = celery.store
    # the endings this command records (release, reconcile) are handed to the webhooks here
    hooks = webhooks.install(celery)
    if args.command == "list":
        result: Any = {"workers": operator.workers(store), "slots": operator.slots(store)}
    elif args.command == "alive":
        result = operator.alive(store, args.hostname)
    elif args.command == "release":
        result = operator.release(store, args.workflow_id)
    elif args.command == "reconcile":
        result = operator.reconcile(store, hooks)
    else:
        result = operator.check(store)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    failed = (args.command == "check" and not result["ok"]) or \
        (args.command == "alive" and result["alive"] is False)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
