# The two commands a newcomer needs:  `make study`  and  `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CORES  ?= all
CONFIG ?= config/synthetic.yaml
# rules call `python -m pose_study …`: that must be this environment's python
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: study test test-workflow env clean-study

## make study: create the environment if needed, then run the default (synthetic) study end to end
study: $(STAMP)
	$(PY) -m pose_study check-config $(CONFIG)
	$(VENV)/bin/snakemake --cores $(CORES) --configfile $(CONFIG)

## make test: the default test suite (fast; CPU only)
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

## make test-workflow: the whole-DAG tests on a tiny study (CI runs these too)
test-workflow: $(STAMP)
	$(PY) -m pytest -m workflow $(PYTEST_ARGS)

env: $(STAMP)

# torch is installed first and pinned: on a CPU machine pip takes the local CPU wheel (seconds);
# on a GPU machine the same pin resolves to the CUDA build.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

clean-study:
	rm -rf results logs benchmarks checkpoints reports/synthetic .snakemake
