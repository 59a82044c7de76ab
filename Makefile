# Two entry points a fresh machine needs: `make run` (the TUI, with an offline demo) and `make test`.
# Each builds its own virtual environment in .venv the first time.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Installed before the project so pip keeps it: on a plain Linux box this release from PyPI is the
# CUDA build, on the CPU-only dev machines it is the CPU wheel that lies on disk. Override as you like,
# e.g. make TORCH="torch --index-url https://download.pytorch.org/whl/cu124".
TORCH  ?= torch==2.13.0

.PHONY: venv run demo test bench clean

$(BIN)/dmf-tui: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev,postgres]' -c constraints.txt
	touch $@

venv: $(BIN)/dmf-tui

# The TUI on a demo database: two queued runs on the offline synthetic-100k dataset.
run: venv
	$(BIN)/dmf-tui demo

# Lint and types first (seconds), then one pytest process per core (pytest-xdist): on a 2-core machine
# the suite takes about half as long. Settings for all three are in pyproject.toml.
test: venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -n auto

# Every CPU benchmark; their printed figures go to bench/RESULTS.md. bench/bench_gpu.py needs a card.
bench: venv
	for b in load engine store worker tui faults; do $(BIN)/python bench/bench_$$b.py || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
