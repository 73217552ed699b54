# Two commands on a fresh machine (only Python 3.11+ needed): `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
LOCK   := requirements.lock
export PATH := $(CURDIR)/$(BIN):$(PATH)
# WEB_BIND, FLOWER_PORT, FLOWER_BASIC_AUTH and WORKER_CONCURRENCY pass through from the
# environment (or `make run WEB_BIND=…`); their defaults live in gunicorn.conf.py,
# flowerconfig.py and the Procfile. Flower's password has no default: `make run` creates a
# random one per checkout in .flower-auth (git-ignored) and prints it.

.PHONY: run test prove soak bench lint install lock clean browser nginx prometheus mutations docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Exactly the lock's pinned, hash-checked packages (pip and setuptools included: nothing is
# resolved or fetched unpinned), then the project itself, built with the locked setuptools.
$(VENV)/.installed: $(LOCK) pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

install: $(VENV)/.installed

# Re-resolve the lock from pyproject.toml, keeping pins that still fit; upgrade with
# `make lock LOCK_ARGS=--upgrade` (or `--upgrade-package celery`). Run it on Python 3.11.
lock: install
	@$(BIN)/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
	  { echo "make lock: $(LOCK) is for Python 3.11; this venv has another" >&2; exit 1; }
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --all-extras \
	  --build-deps-for editable --generate-hashes --allow-unsafe --strip-extras \
	  --no-emit-index-url --no-emit-find-links $(LOCK_ARGS) --output-file $(LOCK) pyproject.toml

run: install nginx
	@$(BIN)/python -m devtools.banner
	$(BIN)/python -m devtools.with_redis -- $(BIN)/honcho start

# The suite runs in TEST_WORKERS processes (pytest-xdist), a test file to a process: most of its
# time is spent waiting for time limits, leases and workers, not computing (measured: 5.4 min
# serial, 2.0 min with 3 processes, on 2 cores). TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 3

test: install browser nginx prometheus
	$(BIN)/python -m devtools.with_redis -- $(BIN)/python -m pytest -m "not soak" \
	  -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The browser tests drive Debian's chromium (Playwright's own browser download fails here, so
# never `playwright install`); installed when missing and we may (root), else they skip.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
	  { echo "make: installing chromium for the browser tests" >&2; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "make: no chromium and not root: the browser tests will skip" >&2; }

# The alert rules' tests (promtool check/test rules) and the real-Prometheus test need Debian's
# `prometheus` package (it brings promtool); installed when missing and we may (root), without
# its recommends, else they skip and say so.
prometheus:
	@command -v promtool >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
	  { echo "make: installing prometheus (promtool) for the alert rules' tests" >&2; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends prometheus >/dev/null; } || \
	  echo "make: no promtool and not root: the alert rules' tests will skip" >&2; }

# The web's front is Debian's nginx (web/front.py, the Procfile's web line): installed when
# missing and we may (root), as chromium is; else `make run` says what to install and the
# front's tests skip, saying so.
nginx:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { [ "$$(id -u)" = 0 ] && \
	  { echo "make: installing nginx for the web's front" >&2; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 \
	    nginx >/dev/null; } || echo "make: no nginx and not root: apt-get install nginx" >&2; }

# The contract fuzzed longer than `make test` does (schemathesis, examples per route), the raw
# requests' fuzz ten times longer, the slow clients held for 30 s, and the model-based tests
# (tests/model/) with ten times the examples of `make test`; each test may take longer than
# pyproject's 120 s (a 1,000-example contract test on a loaded machine took more).
prove: install nginx
	$(BIN)/python -m devtools.with_redis -- env CONTRACT_EXAMPLES=$${CONTRACT_EXAMPLES:-1000} \
	  FUZZ_REQUESTS=$${FUZZ_REQUESTS:-3000} SLOW_CLIENT_HOLD=$${SLOW_CLIENT_HOLD:-30} \
	  $(BIN)/python -m pytest tests/integration/test_contract.py tests/integration/test_fuzz.py \
	  tests/integration/test_front.py -o timeout=600 $(PYTEST_ARGS)
	env MODEL_PROFILE=prove $(BIN)/python -m pytest tests/model -o timeout=3600 $(PYTEST_ARGS)

# Each deliberate breakage of a script (tests/model/mutations.py), one at a time, in a copy of
# the tree: the slot machine must fail on every one at the CI size.
mutations: install
	$(BIN)/python -m tests.model.mutations

# then the whole lifecycle and chaos matrix against RabbitMQ (`make test` runs a subset of it),
# and the 3-node RabbitMQ cluster's faults at full length (`make test`: one leader kill each),
# and the multi-host Redis Cluster faults at full length (half the slots resharded 3 times, every
# fault three times; `make test`: a short form), and the lifecycle and chaos suites again with
# tracking on a 6-node Redis Cluster per test process (TEST_TRACKING=cluster; the broker the
# single Redis, and RabbitMQ's subset)
soak: install
	$(BIN)/python -m devtools.with_redis -- $(BIN)/python -m pytest -m soak -v $(PYTEST_ARGS)
	$(BIN)/python -m devtools.with_redis -- env TEST_BROKERS=amqp TEST_AMQP_FULL=1 \
	  $(BIN)/python -m pytest -m "broker_matrix or rabbit_cluster" -v $(PYTEST_ARGS)
	$(BIN)/python -m devtools.with_redis -- env TEST_CLUSTER_FULL=1 \
	  $(BIN)/python -m pytest -m cluster_hosts -v -s $(PYTEST_ARGS)
	$(BIN)/python -m devtools.with_redis -- env TEST_TRACKING=cluster TEST_BROKERS=redis,amqp \
	  $(BIN)/python -m pytest -m "cluster_tracking and not soak" -n $(TEST_WORKERS) \
	  --dist loadfile -v $(PYTEST_ARGS)

bench: install nginx
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# docs/configuration.md is generated from the settings' own comments (worker/core/settings.py);
# tests/unit/test_docs.py fails when it is stale.
docs: install
	$(BIN)/python -m devtools.configuration_doc

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy worker web devtools bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
