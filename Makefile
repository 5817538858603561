# Everything runs from a local virtualenv that `make` creates on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export DAGSTER_HOME ?= $(CURDIR)/.feature_platform/dagster
# The instance config: local SQLite by default, deploy/dagster.postgres.yaml in production (docs/operations.md).
DAGSTER_INSTANCE_CONFIG ?= dagster.yaml

.PHONY: demo test ui install clean serve redis-stop

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all,dev,spark,k8s]'
	touch $@

install: $(VENV)/.installed

$(DAGSTER_HOME)/dagster.yaml: $(DAGSTER_INSTANCE_CONFIG)
	mkdir -p $(DAGSTER_HOME)
	cp $(DAGSTER_INSTANCE_CONFIG) $@

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m demo

test: install
	$(PY) -m pytest

ui: install $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

serve: install
	$(PY) -m feature_platform.serving.server --repo .

redis-stop:
	-$(PY) -m feature_platform.online.redis_server stop

clean: redis-stop
	rm -rf .feature_platform
