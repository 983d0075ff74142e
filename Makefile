# Flowsite: `make run` starts everything on the embedded default; `make test` runs the suite.

VENV ?= .venv
BIN := $(VENV)/bin
# An interpreter >= 3.12: PYTHON=... wins, then PATH, then pyenv's installed versions.
PYTHON ?= $(shell scripts/find-python)

.PHONY: run test lint venv clean

$(BIN)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "No Python >= 3.12 found; pass PYTHON=/path/to/python3.12" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e . --group dev
	@touch $@

venv: $(BIN)/.installed

run: venv
	@scripts/run

test: venv
	@scripts/test

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) var staticfiles
