# transferguard: the two promised commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
OUT    ?= runs/demo

.PHONY: setup system-deps demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Optional Debian data and fonts (Fashion-MNIST, decorative digit fonts). Installed when this
# machine has apt and root; otherwise the project runs on its pip-installable data and says so.
system-deps:
	@bash scripts/install-system-deps.sh

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: system-deps $(STAMP)

demo: setup
	$(BIN)/transferguard reproduce demo --out $(OUT)

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests benchmarks

bench: setup
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info
