# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_OUT ?= reports/demo

.PHONY: demo demo-train test venv dev lock wheel-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip

# Stamp files: re-install only when a lock file changes. The locks (requirements/*.lock, pip-compile with hashes)
# pin every package; deeppose itself goes in editable, without resolving anything more.
$(VENV)/.installed: pyproject.toml requirements/runtime.lock | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements/runtime.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml requirements/dev.lock | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements/dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@ $(VENV)/.installed

venv: $(VENV)/.installed
dev: $(VENV)/.installed-dev

# the shipped model on real photos (needs ../shared/data): a line per image and a contact sheet
demo: $(VENV)/.installed
	$(BIN)/deeppose demo --out $(DEMO_OUT)

# the training demo: synthetic people, the small regressor trained for 30 epochs (a few minutes)
demo-train: $(VENV)/.installed
	$(BIN)/deeppose demo --train --out $(DEMO_OUT)-train

test: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

# refresh the locks after changing pyproject.toml's dependencies (Python 3.11, Linux x86_64, torch's CPU wheel)
lock: | $(BIN)/python
	$(BIN)/pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links --allow-unsafe \
	    --output-file requirements/runtime.lock pyproject.toml
	$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links --allow-unsafe \
	    --extra dev --output-file requirements/dev.lock pyproject.toml

# the wheel in a fresh venv outside the checkout: deeppose --version and a prediction on one photo
wheel-check: $(VENV)/.installed-dev
	PYTHON=$(PYTHON) .ci/wheel_check.sh

clean:
	rm -rf $(VENV) reports build src/*.egg-info .pytest_cache
