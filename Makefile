# cnnrecon: `make demo` and `make test` are the whole set-up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo demo-style test test-reproductions bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/cnnrecon train --config experiments/denoise_dncnn.py:demo --workdir runs/demo
	@echo "report: runs/demo/report.md (tables in runs/demo/eval/)"

# Gatys style transfer of a bundled photo (VGG-16 hed weights: cached, ../shared, or fetched).
demo-style: install
	$(BIN)/python scripts/demo_style.py

# The layer contract first (import-linter: pyproject.toml), then the suite.
# pytest exits 5 when it collected no tests: that is a failure too.
test: install
	$(BIN)/lint-imports
	$(BIN)/pytest -q -n 2 --dist worksteal -m "not reproduction" tests; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: no tests were collected" >&2; exit 1; fi; exit $$status

# The checks that take minutes of CPU each, apart from `make test` (CI runs both): the published
# numbers of the DnCNN authors' releases on whole test sets (DnCNN-S, DnCNN-3, DnCNN-B), Gatys with the
# real VGG-16 weights (these skip without ../shared/data), and the `make demo` recipe beating non-local means.
test-reproductions: install
	$(BIN)/pytest -q -n 2 --dist worksteal -m reproduction -rs tests; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test-reproductions: no tests were collected" >&2; exit 1; fi; exit $$status

# The PyTorch reference is only needed here; override TORCH to use another build.
TORCH ?= torch==2.13.0
bench: install
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet '$(TORCH)'
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

clean:
	rm -rf runs .pytest_cache
