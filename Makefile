# Two commands on a fresh machine (only Python 3.11+ needed): `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
LOCK   := requirements.lock
export PATH := $(CURDIR)/$(BIN):$(PATH)
# WEB_BIND, FLOWER_PORT, FLOWER_BASIC_AUTH and WORKER_CONCURRENCY pass through from the
# environment (or `make run WEB_BIND=…`); their defaults live in gunicorn.conf.py,
# flowerconfig.py and the Procfile.

.PHONY: run test soak bench lint install lock clean

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

run: install
	@$(BIN)/python -m devtools.banner
	$(BIN)/python -m devtools.with_redis -- $(BIN)/honcho start

test: install
	$(BIN)/python -m devtools.with_redis -- $(BIN)/python -m pytest -m "not soak" $(PYTEST_ARGS)

soak: install
	$(BIN)/python -m devtools.with_redis -- $(BIN)/python -m pytest -m soak -v $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m devtools.with_redis -- $(BIN)/python bench/run.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy worker web devtools

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
