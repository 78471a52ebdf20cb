# Two commands for a fresh machine: `make run` and `make test` (see README.md).
# Both install from the lock files in requirements/ (every package pinned, with its hashes);
# `make lock` refreshes them from pyproject.toml.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
RUN_LOCK  := requirements/run.lock
TEST_LOCK := requirements/test.lock

# pip as the locks need it: no configuration file, and no local find-links, extra indexes or
# constraints from the environment, since a wheel picked from a local directory or index may
# carry other hashes than the index the locks were made from. PIP_INDEX_URL stays, and so does
# the CA bundle: PIP_CERT, else the one pip's configuration names (a TLS-inspecting proxy).
PIP_CERT ?= $(shell $(PYTHON) -m pip config list 2>/dev/null | sed -n "s/^global\.cert='\(.*\)'$$/\1/p")
PIP := env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_CONSTRAINT -u PIP_NO_INDEX \
	PIP_CONFIG_FILE=/dev/null $(if $(PIP_CERT),PIP_CERT=$(PIP_CERT)) $(BIN)/python -m pip
PIP_INSTALL := $(PIP) install --quiet --disable-pip-version-check
# The lock's own header names this command; `make lock` runs it.
UV ?= $(BIN)/uv
# `make lock LOCK_UPGRADE=` keeps the current pins and only adds what pyproject.toml now asks for.
LOCK_UPGRADE ?= --upgrade
UV_COMPILE := $(UV) pip compile --quiet --no-config --universal --python-version 3.11 \
	--generate-hashes --custom-compile-command "make lock"

.PHONY: run test lint audit lock bench fuzz clean

# A changed run lock starts a new virtualenv, so a package dropped from the lock is gone too.
$(VENV)/.run-locked: $(RUN_LOCK)
	$(PYTHON) -m venv --clear $(VENV)
	$(PIP_INSTALL) --require-hashes -r $(RUN_LOCK)
	touch $@

# The editable install builds the DNS server's C loop in place (setup.py).
$(VENV)/.run-installed: $(VENV)/.run-locked pyproject.toml setup.py src/regshield/dns/_udp.c
	$(PIP_INSTALL) --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.run-installed $(TEST_LOCK)
	$(PIP_INSTALL) --require-hashes -r $(TEST_LOCK)
	touch $@

run: $(VENV)/.run-installed
	$(BIN)/regshield serve

lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src

audit: $(VENV)/.test-installed
	$(BIN)/python scripts/audit $(RUN_LOCK) $(TEST_LOCK)

test: $(VENV)/.test-installed
	scripts/test-services
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src
	$(BIN)/python scripts/audit $(RUN_LOCK) $(TEST_LOCK)
	$(BIN)/pytest

# The test lock is solved under the run lock's pins, so both install the same versions.
lock: $(VENV)/.test-installed
	$(UV_COMPILE) $(LOCK_UPGRADE) pyproject.toml requirements/install.in -o $(RUN_LOCK)
	$(UV_COMPILE) $(LOCK_UPGRADE) --extra test -c $(RUN_LOCK) pyproject.toml requirements/install.in \
		-o $(TEST_LOCK)

bench: $(VENV)/.test-installed
	scripts/test-services
	$(BIN)/python bench/api.py

# Schemathesis against a served instance, as an owner and as an admin, with a deep budget (see
# bench/fuzz.py; `make test` runs the same harness with a few examples per operation).
FUZZ_ARGS ?= --max-examples 100 --seed 19
fuzz: $(VENV)/.test-installed
	$(BIN)/python bench/fuzz.py $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) regshield-data .pytest_cache .mypy_cache .ruff_cache
