# The two commands a newcomer types: `make demo` and `make test`. Everything else is a building block.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The machines carry a CPU wheel of torch in /opt/wheels. Named in the install, it is the torch installed: the
# harness extra takes any torch >= 2.3, and left to choose pip would take the newest, CUDA, build from PyPI.
CPU_TORCH := $(firstword $(wildcard /opt/wheels/torch-*.whl))

.PHONY: demo test lint unit integration bench up down status venv clean

# pip's log goes to a file and is shown only when the install fails.
$(BIN)/gateway: pyproject.toml
	@echo "installing the project and its dev tools into $(VENV) (first time: about a minute)"
	$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --upgrade pip > $(VENV)/pip.log 2>&1 || (cat $(VENV)/pip.log; exit 1)
	@$(BIN)/pip install $(CPU_TORCH) -e '.[dev]' >> $(VENV)/pip.log 2>&1 || (cat $(VENV)/pip.log; exit 1)
	@touch $@

venv: $(BIN)/gateway

up: venv
	$(BIN)/gateway dev up

down:
	@if [ -x $(BIN)/gateway ]; then $(BIN)/gateway dev down; else echo "no venv: nothing was started"; fi

status: venv
	$(BIN)/gateway dev status

demo: up
	$(BIN)/gateway demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy gateway harness bot bench tests

unit: venv
	$(BIN)/pytest tests/unit

# The integration tests start the dev stack themselves when it is down.
integration: venv
	$(BIN)/pytest tests/integration

# The unit tests run beside the integration tests (they touch no daemon of the dev stack, and fill its
# waits: the stack's start, Slurm's scheduling); their report follows the integration tests' (and stays in
# .unit-tests.log). The Debian packages come first, so the two never run apt at once. The slowest tests are
# listed, so CI's log shows where the suite's time goes.
test: lint
	@$(BIN)/python -c 'from gateway.devstack.packages import ensure_packages; ensure_packages()'
	@echo "unit tests: running beside the integration tests; their report follows them"
	@$(BIN)/pytest tests/unit --durations=10 > .unit-tests.log 2>&1 & unit=$$!; \
	$(BIN)/pytest tests/integration --durations=25; integration=$$?; \
	wait $$unit; unit=$$?; \
	echo "== unit tests (.unit-tests.log)"; cat .unit-tests.log; \
	echo "integration tests: exit $$integration, unit tests: exit $$unit"; \
	test $$integration -eq 0 && test $$unit -eq 0

bench: up
	$(BIN)/python -m bench

clean: down
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
