# The two commands: `make demo` and `make test`. Both create .venv and install if needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-all bench bench-mmotu readme clean-runs

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: install
	$(VENV)/bin/sonogan demo --out runs

# lint-imports: the layers of .importlinter (docs/architecture.md), before the tests
test: install
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

test-all: install
	$(PY) -m pytest -q -m ''

# The benchmark suite: every number in the README comes from benchmarks/results/*.json written
# here, and `readme` renders them into README.md. `bench` is the quick CPU part (about an hour on
# 2 cores); `bench-mmotu` reruns the real-data tables (hours on 2 cores; needs ../shared/datasets/mmotu-2d).
bench: install
	$(PY) benchmarks/demo.py
	$(PY) benchmarks/gan_speed.py --iters 10 --repeats 3
	$(PY) benchmarks/latency.py
	$(PY) benchmarks/executor_overhead.py --folds 0,1
	$(PY) benchmarks/reader_study.py
	$(MAKE) readme

bench-mmotu: install
	$(PY) benchmarks/preprocess_mmotu.py
	$(PY) benchmarks/mmotu_baseline.py --variants lite0-roi-160
	$(PY) benchmarks/mmotu_baseline.py --folds 0 --variants scratch-64-grey,lite0-160-plain,lite0-160,lite0-224,lite0-roi-224
	$(PY) benchmarks/mmotu_experiment.py --config configs/mmotu-strong.yaml --folds 0
	$(PY) benchmarks/audit_mmotu.py
	$(PY) benchmarks/annotation_removal.py --dataset runs/bench/mmotu
	$(PY) benchmarks/mmotu_lesion.py --folds 0
	$(PY) benchmarks/predict_mmotu.py
	$(MAKE) readme

readme: install
	$(PY) benchmarks/readme_tables.py

clean-runs:
	@echo "runs/ holds your results; delete it by hand if you really mean to."
