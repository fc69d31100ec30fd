# Each target builds .venv on first use (and again whenever pyproject.toml changes).
# `make test` also installs what the browser and front-end tests need: Debian's chromium when
# /usr/bin/chromium is missing, and widgets/node_modules (npm ci) for the JS unit tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := widgets/node_modules/.installed

.PHONY: demo test test-js test-py test-notebooks bench lint lab notebooks chromium clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

$(NODE_STAMP): widgets/package.json widgets/package-lock.json
	cd widgets && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

chromium:
	@command -v chromium >/dev/null 2>&1 || test -x /usr/bin/chromium || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP) $(NODE_STAMP) chromium
	$(BIN)/ruff check minigun_nb tests bench examples
	$(MAKE) --no-print-directory test-js
	$(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory test-notebooks

# The tutorials, cell by cell (nbval): every cell must run; the cells tagged
# nbval-check-output are compared with their saved outputs, timings and ids sanitized.
test-notebooks: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env \
		--nbval-sanitize-with notebooks/nbval_sanitize.cfg notebooks/

test-js: $(NODE_STAMP)
	cd widgets && node --test

test-py: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	$(BIN)/python bench/run.py --write

lint: $(STAMP)
	$(BIN)/ruff check minigun_nb tests bench examples
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_layers.py tests/stagefn/test_layer.py
	$(BIN)/mypy

notebooks: $(STAMP)
	$(BIN)/python notebooks/build.py

lab: $(STAMP)
	$(BIN)/jupyter-lab notebooks

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build dist *.egg-info widgets/node_modules
