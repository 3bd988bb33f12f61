# The two commands a newcomer needs: `make quickstart` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install quickstart test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints/cpu.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints/cpu.txt -e ".[test]"
	touch $(STAMP)

quickstart: install
	$(BIN)/edgegnn quickstart --out runs/quickstart

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/bench_train_speed.py
	$(BIN)/python benchmarks/bench_gowalla_budget.py

clean:
	rm -rf $(VENV) runs .pytest_cache
