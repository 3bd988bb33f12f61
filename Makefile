# The two commands a newcomer needs: `make quickstart` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EMULATORS := .emulators/.ready

.PHONY: install emulators js quickstart lint test bench bench-quality clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints/cpu.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints/cpu.txt -e ".[test]"
	touch $(STAMP)

# QEMU user-mode + an aarch64 python with the runtimes (~1 minute; the Debian mirror and PyPI):
# export verifies artifacts on other CPUs with it, and the CPU-matrix tests run on it.
emulators: $(EMULATORS)

$(EMULATORS): scripts/setup_emulators.sh | $(STAMP)
	bash scripts/setup_emulators.sh

# The JavaScript runtime's packages (onnxruntime-node/web, playwright-core) from its lockfile.
# ONNXRUNTIME_NODE_INSTALL=skip: onnxruntime-node's install script would try to download a CUDA
# provider (runtimes/js/.npmrc says the same for a plain `npm ci` there).
JS_STAMP := runtimes/js/node_modules/.installed
js: $(JS_STAMP)

$(JS_STAMP): runtimes/js/package.json runtimes/js/package-lock.json
	cd runtimes/js && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error
	touch $(JS_STAMP)

quickstart: install
	$(BIN)/edgegnn quickstart --out runs/quickstart

# ruff's rules (pyproject.toml [tool.ruff]); `make test` runs it first
lint: install
	$(BIN)/ruff check edgegnn tests benchmarks scripts

# The whole suite, the CPU matrix included (EDGEGNN_SKIP_CPU_MATRIX=1 skips it and the emulators),
# and the JavaScript runtime under Node and headless Chromium (EDGEGNN_SKIP_JS=1 skips them).
test: install lint
	@if [ "$${EDGEGNN_SKIP_CPU_MATRIX:-0}" != 1 ]; then $(MAKE) --no-print-directory emulators; fi
	@if [ "$${EDGEGNN_SKIP_JS:-0}" != 1 ]; then $(MAKE) --no-print-directory js; fi
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/bench_train_speed.py
	$(BIN)/python benchmarks/bench_gowalla_budget.py

# Quality side by side (edgegnn's default, each kind, implicit ALS, popularity; ~40 min here)
bench-quality: install
	$(BIN)/python -m pip install --quiet -c constraints/cpu.txt -e ".[test,bench]"
	$(BIN)/python benchmarks/bench_quality.py
	$(BIN)/python benchmarks/bench_graph_filter_gowalla.py

clean:
	rm -rf $(VENV) runs .pytest_cache
