# The verbs the README and CI call, word for word. Each one sets up what it needs first (idempotent).
VENV   := .venv
PY     := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
export TESTCONTAINERS_RYUK_DISABLED := true
export TESTCONTAINERS_CONNECTION_MODE := docker_host
export TC_HOST := 127.0.0.1

.PHONY: setup upgrade test fast lint bench report clean

setup:
	@bash scripts/setup.sh

## upgrade: the main job, the whole upgrade of the default plan (pytest suites/)
upgrade: setup
	$(PYTEST) suites/

## test: lint (ruff, mypy), then every tier of the project's own tests (unit, plugin, integration, docker, end-to-end)
test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PYTEST) tests -m "" -n 2 --dist loadgroup

## fast: the fast self-tests only (what plain `pytest` runs)
fast:
	$(PYTEST)

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: setup
	$(PY) -m benchmarks

report:
	@bash scripts/allure-html.sh $(RUN)

clean:
	rm -rf reports/runs .pytest_cache
