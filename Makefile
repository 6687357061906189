# Quick start: `make demo` and `make test` (each builds .venv when needed).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lint clean kernels

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m compileall -q src
	touch $(STAMP)

# The simulator's step loop compiled ahead of time for the present sources
# (`gpssignal build-kernels`; about 20 s, needs a C compiler). Runs start
# faster and lighter with it and give the same results without it, so a
# failed build only warns. Quick when the library is current.
kernels: $(STAMP)
	@$(VENV)/bin/gpssignal build-kernels -q \
		|| echo "warning: kernel library not built; runs compile with numba instead" >&2

demo: $(STAMP) kernels
	@# Byte-compile the sources once (they are an editable install), so that
	@# start-up does not recompile them where PYTHONDONTWRITEBYTECODE is set.
	@$(PY) -m compileall -q src
	@# A fast paired evaluation (4 days instead of the default 10) of fixed timing,
	@# the time-of-day plan and the GPS controller trained on 10 history days
	@# (data/README.md says how the model was made); prints the headline table
	@# and the path of the report.
	$(VENV)/bin/gpssignal evaluate scenarios/vallensbaek.toml --model data/vallensbaek_model.json \
		--replications 4 --out results/demo

test: $(STAMP) kernels
	$(PY) -m pytest -q

bench: $(STAMP) kernels
	$(PY) -m pytest benchmarks --benchmark-only -q

lint: $(STAMP)
	$(PY) -m pip install --quiet ruff mypy
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy src

clean:
	rm -rf $(VENV) results .pytest_cache
