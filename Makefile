# Set-up on a fresh machine with Python 3.11; each target installs only what it needs into .venv:
#   make demo   installs coughclf alone (~2.7 GB), runs `coughclf demo`
#   make test   installs coughclf[test] (the parity references: PyTorch, torchaudio, transformers, JAX;
#               ~8.6 GB), runs the test suite
#   make docs   installs coughclf[docs] (MkDocs, Material, mkdocstrings), builds the site into site/ with
#               --strict: a broken link or reference fails the build
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-slow docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# One stamp per extra: `make demo` then `make test` adds the test references; an edited setup.cfg reinstalls.
$(VENV)/installed-%: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.$(if $(filter-out base,$*),[$*])'
	touch $@

demo: $(VENV)/installed-base
	$(BIN)/coughclf demo

test: $(VENV)/installed-test
	$(BIN)/python -m pytest -q

test-slow: $(VENV)/installed-test
	$(BIN)/python -m pytest -q -m slow

# NO_MKDOCS_2_WARNING: Material prints a banner about MkDocs' future on every build; it is no warning of ours.
docs: $(VENV)/installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
