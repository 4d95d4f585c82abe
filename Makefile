# Two set-up commands on a fresh machine: `make demo` and `make test`.
# Everything they need (the virtual environment, Python and Debian packages) is installed here.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
APT_PACKAGES := prometheus prometheus-pushgateway iproute2

.PHONY: install demo test soak lint format bench apt-deps clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch 2.13.0 resolves to the machine's local CPU wheel; unpinned it would pull CUDA.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,bench]'
	# d3rlpy is the trainer-speed benchmark's comparison only. It pins gymnasium==1.0.0, so it is
	# installed without its pins (its other needs are the bench extra) to keep the product's
	# gymnasium. `make test` runs every benchmark in smoke mode, so it is installed here too.
	$(BIN)/pip install -q --no-deps d3rlpy==2.8.1
	touch $(STAMP)

# Debian packages for the monitoring tests (real Prometheus and Pushgateway) and the deploy test
# (iproute2: `ip netns`, one network namespace per container); skipped when present.
apt-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

demo: $(STAMP)
	$(BIN)/policyloop demo

# Style, the layering contracts of docs/architecture.md (import-linter, [tool.importlinter] in
# pyproject.toml), types (mypy, strict on schemas/ and the registry), and at most 400 lines a file.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	@long=$$(find services learner schemas -name '*.py' -exec wc -l {} + | awk '$$2 != "total" && $$1 > 400'); \
	if [ -n "$$long" ]; then echo "files over 400 lines:"; echo "$$long"; exit 1; fi

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The monitoring tests need the real Prometheus and Pushgateway: here a missing binary fails them.
# The test files are shared among TEST_WORKERS processes (pytest-xdist); a file stays on one
# worker, so its module fixtures (brokers, tables) start once. TEST_WORKERS=0 runs them serially.
TEST_WORKERS ?= 2
test: $(STAMP) apt-deps lint
	POLICYLOOP_REQUIRE_MONITORING=1 $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

# Fault tests at full scale (minutes each): the marker `soak`, left out of `make test`.
soak: $(STAMP) apt-deps
	POLICYLOOP_REQUIRE_MONITORING=1 $(BIN)/pytest -q -m soak

bench: $(STAMP)
	$(BIN)/python -m tests.benchmarks $(BENCH)

clean:
	rm -rf $(VENV) .policyloop .pytest_cache .ruff_cache .hypothesis
