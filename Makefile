# Two commands do everything on a fresh machine: `make experiments` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: experiments test env clean-env

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The nnunet extra with the torch pin in the same command (pip keeps the CPU build).
	$(BIN)/python -m pip install --quiet -e '.[test,nnunet]' 'torch==2.13.0'
	touch $(STAMP)

env: $(STAMP)

experiments: $(STAMP)
	$(BIN)/python experiments/compare.py experiments/configs/quick.yaml

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

clean-env:
	rm -rf $(VENV)
