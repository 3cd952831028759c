# ovbench set-up and entry points. Two commands do everything on a fresh machine:
#   make run    # the main job on the embedded default benchmark
#   make test   # the whole test suite
# Both create .venv on first use and reuse it afterwards (seconds to start).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
CONSTRAINTS := requirements/constraints-cpu.txt
STAMP := $(VENV)/.ovbench-installed
ABLATION ?= ablations/block_size.yaml
# your own runs' reports: reports/ holds the committed ones, which `ovbench report` will not overwrite
REPORT_OUT ?= work_dirs/reports
PYTEST_ARGS ?=

.PHONY: venv run regress test test-slurm test-fast env constraints clean-venv

venv: $(STAMP)

# torch first and alone: `pip install torch==2.13.0` takes the CPU build on disk;
# everything else is then installed under the constraints file, so no resolver
# step can swap in a CUDA torch. --no-build-isolation keeps the build on the
# venv's setuptools<81 (mmengine imports pkg_resources).
$(STAMP): setup.cfg pyproject.toml $(CONSTRAINTS)
	@test -n "$(PYTHON)" || { echo "error: need python3.11 (or python3) on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip wheel "setuptools==80.10.2"
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) --no-build-isolation -e ".[dev,lite,slurm,postgresql]"
	# COCO's panopticapi (the PQ reference of tests/test_pq.py and benchmarks/pq_speed.py); --no-deps
	# because its metadata pins numpy<2 and pulls pycocotools/scikit-image it does not need for pq_compute.
	$(BIN)/python -m pip install -q --no-deps panopticapi-lite==0.2.0
	$(BIN)/python -c "import ovbench, ovbench.compat as c; c.check_stack()"
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/ovbench run $(ABLATION)
	$(BIN)/ovbench report $(ABLATION) --format md --out $(REPORT_OUT)

regress: $(STAMP)
	$(BIN)/ovbench regress

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# A real single-node SLURM (tools/slurm-local.sh; apt-get install slurmctld slurmd slurm-client munge).
test-slurm: $(STAMP)
	$(BIN)/python -m pytest -m slurm $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

env: $(STAMP)
	$(BIN)/ovbench env

# Re-derive the exact pins from the current venv (review the diff before committing).
constraints: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v -iE '^(torch|torchvision|setuptools)==' > $(CONSTRAINTS).new
	@echo "wrote $(CONSTRAINTS).new; re-add torch==2.13.0, torchvision==0.28.0, setuptools pins"

clean-venv:
	rm -rf $(VENV)
