# Everything a checkout needs lives in .venv; `make install` is idempotent and
# quick when pyproject.toml has not changed since the last install.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Node's OpenTelemetry SDK for the OTLP tests, as its lockfile pins it; npm ci writes the
# hidden lockfile .package-lock.json in node_modules, which is this rule's stamp.
NODE_OTEL := tests/support/node_otel
NODE_STAMP := $(NODE_OTEL)/node_modules/.package-lock.json
# divviup-ts (@divviup/prio3, VDAF-08) and @hpke/core as both DAP-09 aggregators for
# tests/shells/test_dap_peer.py, the same way.
NODE_DAP := tests/support/node_dap
NODE_DAP_STAMP := $(NODE_DAP)/node_modules/.package-lock.json

.PHONY: install run test lint bench clean screenshots package lock

install: $(STAMP) $(NODE_STAMP) $(NODE_DAP_STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test,dev,bench]'
	touch $(STAMP)

$(NODE_STAMP): $(NODE_OTEL)/package-lock.json
	@if command -v npm >/dev/null; then \
		echo "npm ci in $(NODE_OTEL)"; cd $(NODE_OTEL) && npm ci --no-audit --no-fund --loglevel=error; \
	else \
		echo "npm not found: the Node OpenTelemetry SDK tests will skip (install nodejs and npm, then make install)"; \
	fi

$(NODE_DAP_STAMP): $(NODE_DAP)/package-lock.json
	@if command -v npm >/dev/null; then \
		echo "npm ci in $(NODE_DAP)"; cd $(NODE_DAP) && npm ci --no-audit --no-fund --loglevel=error; \
	else \
		echo "npm not found: the DAP peer tests will skip (install nodejs and npm, then make install)"; \
	fi

# requirements.lock anew: the newest versions pyproject.toml allows, resolved in a fresh
# environment (every extra, so the bundle's packages are pinned too).
lock:
	rm -rf build/lock-venv
	$(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/python -m pip install --quiet --upgrade pip
	build/lock-venv/bin/python -m pip install --quiet -e '.[test,dev,bench,package]'
	{ sed -n '1,2p' requirements.lock; build/lock-venv/bin/python -m pip freeze --exclude-editable; } > requirements.lock.new
	mv requirements.lock.new requirements.lock
	rm -rf build/lock-venv

run: install
	$(BIN)/telemetry-tray

test: install
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	$(BIN)/python -m bench

# A one-folder bundle in dist/telemetry-tray (and dist/Telemetry Tray.app on macOS), on
# Linux also packed with its desktop files as a tarball; docs/packaging.md says how each
# platform's installer is made from it.
package: install $(VENV)/.installed-package
	$(BIN)/pyinstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller \
		packaging/pyinstaller/telemetry-tray.spec
	if [ "$$(uname -s)" = Linux ]; then $(BIN)/python packaging/linux/stage.py; fi

$(VENV)/.installed-package: pyproject.toml requirements.lock
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[package]'
	touch $@

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache $(NODE_OTEL)/node_modules $(NODE_DAP)/node_modules

screenshots: install
	QT_QPA_PLATFORM=offscreen $(BIN)/python tools/screenshots.py
