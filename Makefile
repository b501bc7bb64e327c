# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_OUT ?= reports/demo

.PHONY: demo demo-train test venv dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip

# Stamp files: re-install only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"
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

clean:
	rm -rf $(VENV) reports build src/*.egg-info .pytest_cache
