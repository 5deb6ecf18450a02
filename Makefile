# Jiangmen spatial data platform — the two commands a newcomer needs:
#   make run    install what is missing, provision PostGIS (unless DATABASE_URL is set),
#               migrate, load the Jiangmen framework + demo layers, serve on :5000
#               with one job-queue worker (Ctrl-C stops both)
#   make test   the same set-up (plus, as root, the Debian packages of the real-client
#               tests: python3-qgis, chromium, fonts-noto-cjk), then the whole test
#               suite against a real PostGIS
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
JMGEO := $(VENV)/bin/jmgeo
HOST  ?= 127.0.0.1
PORT  ?= 5000
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)

.PHONY: run test venv assets db demo lint bench clean-db help

help:
	@echo "make run   — serve the platform with the Jiangmen demo data on http://$(HOST):$(PORT)"
	@echo "make test  — run the test suite against a real PostGIS"
	@echo "make lint  — ruff";  echo "make clean-db — drop the local cluster (var/) and start afresh"

venv: $(STAMP)

$(STAMP): pyproject.toml
	@set -e; py=$$(scripts/find-python.sh); \
	 if [ ! -x $(PY) ] || ! $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then \
	   echo "creating $(VENV) with $$py"; rm -rf $(VENV); $$py -m venv $(VENV); fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $@

# browser packages (MapLibre GL JS, ECharts, Swagger UI, Leaflet, Bootstrap CSS) from the npm registry,
# pinned by package-lock.json, copied to jmgeo/static/vendor/: served by the platform itself
ASSETS := jmgeo/static/vendor/.built-$(shell cat package-lock.json scripts/build-assets.mjs | md5sum | cut -c1-12)

assets: $(ASSETS)

$(ASSETS): package.json package-lock.json scripts/build-assets.mjs
	@command -v npm >/dev/null || { echo "npm 未安装 / npm not found: apt-get install nodejs npm"; exit 1; }
	npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	node scripts/build-assets.mjs
	@touch $@

db: venv assets
	$(JMGEO) db ensure
	$(JMGEO) db upgrade

demo: db
	JMGEO_HOST=$(HOST) JMGEO_PORT=$(PORT) $(JMGEO) demo load

run: demo
	$(JMGEO) serve --worker --host $(HOST) --port $(PORT)

test: db
	$(JMGEO) db client-packages --optional
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .

clean-db: venv
	$(JMGEO) db destroy --yes
