# Set-up on a fresh machine: `make test` and `make demo` each create .venv when missing.
# torch is pinned to the 2.13.0 CPU build for this machine (a local wheel installs in seconds;
# an unpinned torch would pull a multi-GB CUDA build). On Colab the notebook uses Colab's torch.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
OUT ?= demo_out

.PHONY: setup test demo bench lint clean

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

setup: $(VENV)/.installed

test: setup
	$(PY) -m pytest -q

demo: setup
	$(PY) -m seqrec demo --out $(OUT)

# Benchmarks (not tests; minutes to an hour): figures go to docs/benchmarks.md.
bench: setup
	$(PY) benchmarks/bench_metrics.py
	$(PY) benchmarks/bench_models.py
	$(PY) benchmarks/bench_ops.py --write
	$(PY) benchmarks/bench_report.py --write
	$(PY) benchmarks/bench_baselines.py --write
	$(PY) benchmarks/bench_data.py --write

lint: setup
	$(PY) -m ruff check src tests benchmarks

clean:
	rm -rf $(OUT) .pytest_cache
