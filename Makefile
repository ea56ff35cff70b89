# The two commands from the README:
#   make demo   the daemon against the built-in Sinqro simulator, virtual printer and panel
#   make test   install everything the tests need, then lint, type-check and run every test
#   make test-slow   the variants too long for CI's budget (the boot test on Debian 12)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-slow venv test-venv system-deps lint check bench clean

# The demo only runs the daemon: edged and its runtime dependencies, nothing else. They come
# pinned from requirements.lock, as the image installs them (no resolver round trips, no
# pip upgrade); edged itself goes in editable, without dependencies of its own to resolve.
$(BIN)/edged: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
		-r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

# The tests' tools (pytest, mypy, ruff, Playwright, ...) on top, for `make test` only.
$(VENV)/.test-extras: $(BIN)/edged
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

venv: $(BIN)/edged

test-venv: $(VENV)/.test-extras

demo: venv
	$(BIN)/edged demo

system-deps:
	scripts/install-test-deps

lint: test-venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# One test worker per core (at most 4): the suite waits on sockets, brokers and a VM as
# much as it computes. The image tests stay together on one worker (xdist group "image").
PYTEST_PARALLEL ?= -n auto --maxprocesses=4 --dist loadgroup

test: system-deps test-venv lint
	$(BIN)/pytest $(PYTEST_PARALLEL)

test-slow: system-deps test-venv
	$(BIN)/pytest -m extended

bench: test-venv
	benchmarks/run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo-state artifacts
