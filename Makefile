# Two commands on a fresh machine (only Python 3.11+ needed): `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
WEB_BIND ?= 127.0.0.1:8000
FLOWER_PORT ?= 5555
FLOWER_BASIC_AUTH ?= admin:admin
export WEB_BIND FLOWER_PORT FLOWER_BASIC_AUTH

.PHONY: run test soak bench lint install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[run,test]'
	touch $@

install: $(VENV)/.installed

run: install
	@echo "API:    http://$(WEB_BIND)/api/workflows"
	@echo "Flower: http://$(FLOWER_PORT:%=127.0.0.1:%)/  (user:password $(FLOWER_BASIC_AUTH))"
	@echo "Try:    curl -X POST http://$(WEB_BIND)/api/workflows/echo/test-runs -d '{\"input\":{\"hi\":1}}'"
	$(BIN)/python -m devtools.with_redis -- $(BIN)/honcho start

test: install
	$(BIN)/python -m devtools.with_redis -- $(BIN)/python -m pytest -m "not soak" $(PYTEST_ARGS)

soak: install
	$(BIN)/python -m devtools.with_redis -- $(BIN)/python -m pytest -m soak -v $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m devtools.with_redis -- $(BIN)/python bench/run.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy worker web

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
