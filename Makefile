# The two commands from the README:
#   make demo   the daemon against the built-in Sinqro simulator, virtual printer and panel
#   make test   install everything the tests need, then lint, type-check and run every test
#   make test-slow   the variants too long for CI's budget (the boot test on Debian 12)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-slow venv system-deps lint check bench clean

$(BIN)/edged: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

venv: $(BIN)/edged

demo: venv
	$(BIN)/edged demo

system-deps:
	scripts/install-test-deps

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# One test worker per core (at most 4): the suite waits on sockets, brokers and a VM as
# much as it computes. The image tests stay together on one worker (xdist group "image").
PYTEST_PARALLEL ?= -n auto --maxprocesses=4 --dist loadgroup

test: system-deps venv lint
	$(BIN)/pytest $(PYTEST_PARALLEL)

test-slow: system-deps venv
	$(BIN)/pytest -m extended

bench: venv
	benchmarks/run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo-state artifacts
