# The two set-up commands: `make demo` and `make test`. Each creates .venv when missing, installs the
# local CPU build of torch FIRST (any other torch spec pulls GBs of CUDA), then the package, then checks
# that nothing replaced torch 2.13.0.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.distill3d-installed
PYTEST_ARGS ?= -n 2 --dist loadgroup -q

.PHONY: install demo test bench lint clean

$(PY):
	python3 -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)
	@$(PY) -c "import sys, torch; v = torch.__version__; \
	  sys.exit(0) if v.startswith('2.13.0') else sys.exit(f'torch is {v}, expected the 2.13.0 CPU build: something upgraded it')"

demo: install
	$(PY) -m distill3d.cli.main demo

test: install
	OMP_NUM_THREADS=1 $(PY) -m pytest $(PYTEST_ARGS)

bench: install
	$(PY) -m benchmarks.run_all

lint: install
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
