# rata: `make demo` and `make test` set everything up on a fresh machine with Python 3.11 and make.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export PYTHONDONTWRITEBYTECODE := 1
export MPLBACKEND := Agg

.PHONY: install demo test lint unit bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (rata)" >/dev/null
	@touch $(STAMP)

install: $(STAMP)

# The whole system locally: embedded PostgreSQL, shipped datasets, an admin (password printed once),
# the runner in dev mode with its API on 127.0.0.1:8000, the dashboards on 127.0.0.1:5006; Ctrl-C stops it.
# DEMO_ARGS passes options, e.g. `make demo DEMO_ARGS="--api-port 8001"`; `--research` runs the research demo.
demo: install
	$(BIN)/rata demo $(DEMO_ARGS)

lint: install
	$(BIN)/ruff check framework runner strategies dashboards tests
	$(BIN)/ruff format --check framework runner strategies dashboards tests
	$(BIN)/mypy

unit: install promtool browser
	$(BIN)/pytest -n 2 --dist loadfile --basetemp=$(CURDIR)/.pytest-tmp

test: lint unit

bench: install
	$(PY) -m tests.bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache reports

# promtool checks the Prometheus alert rules (tests/monitoring); Debian's prometheus package ships it.
# Its post-install may try to start the prometheus service: harmless, and nothing here needs it.
.PHONY: promtool
promtool:
	@command -v promtool >/dev/null 2>&1 || { \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }

# The browser tests' chromium: Debian's package, installed when /usr/bin/chromium is missing (as root).
# playwright (the Python driver) comes with the dev extras; never run `playwright install`.
.PHONY: browser
browser: install
	@test -x /usr/bin/chromium || DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
		|| { DEBIAN_FRONTEND=noninteractive apt-get update && \
		     DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }
	@$(PY) -c "import playwright.sync_api" \
		|| { echo "playwright is missing: add it to the dev extras in pyproject.toml" >&2; exit 1; }
