# Two commands do all set-up on a fresh machine with Python 3.11:
#   make demo   creates .venv, installs coughclf, runs `coughclf demo`
#   make test   creates .venv, installs coughclf[test], runs the test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-slow

$(BIN)/coughclf: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

demo: $(BIN)/coughclf
	$(BIN)/coughclf demo

test: $(BIN)/coughclf
	$(BIN)/python -m pytest -q

test-slow: $(BIN)/coughclf
	$(BIN)/python -m pytest -q -m slow
