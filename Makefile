# Two commands do everything on a fresh machine: `make experiments` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: experiments test env clean-env

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

env: $(STAMP)

experiments: $(STAMP)
	$(BIN)/python experiments/compare.py experiments/configs/quick.yaml

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

clean-env:
	rm -rf $(VENV)
