# Two commands for a new user: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup browser test demo protos lint bench clean

setup: $(STAMP) browser

# torch==2.13.0 first: it is the CPU build on disk; any other torch pulls GBs of CUDA.
# a line per step and pip's own progress (about 2 minutes on a first run; nothing is silent)
$(STAMP): pyproject.toml
	@echo "setup 1/4: virtual environment $(VENV)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "setup 2/4: upgrading pip"
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "setup 3/4: torch (CPU build)"
	$(BIN)/python -m pip install --progress-bar on torch==2.13.0
	@echo "setup 4/4: foryou and its dependencies"
	$(BIN)/python -m pip install --progress-bar on -e '.[dev]'
	@echo "setup: done"
	touch $(STAMP)

# The browser test (tests/app/test_ui_browser.py) drives Debian's chromium through its
# chromedriver (Selenium never downloads one): apt-get installs both when missing (root, or sudo
# without a password prompt); where it cannot, it says so and that one test fails.
BROWSER_PKGS := chromium chromium-driver
APT_INSTALL := env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(BROWSER_PKGS)

browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "setup: no apt-get here; install chromium and chromedriver for the browser test" >&2; exit 0; fi; \
	sudo=""; if [ "$$(id -u)" -ne 0 ]; then \
	  if command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else \
	    echo "setup: not root and no sudo; run: apt-get install $(BROWSER_PKGS)" >&2; exit 0; fi; fi; \
	echo "setup: installing $(BROWSER_PKGS) with apt-get (for the browser test)"; \
	$$sudo $(APT_INSTALL) || { $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q && $$sudo $(APT_INSTALL); }

# lint first, so CI (which runs `make test`) checks the layer rule too
test: lint browser
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/foryou demo

protos: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. protos/*.proto

# ruff; the layer rule (import-linter contracts in pyproject.toml); no import cycles; mypy
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python tools/check_cycles.py
	$(BIN)/mypy

bench: $(STAMP)
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
