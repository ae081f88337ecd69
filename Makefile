# The README's two commands are `make book` (the learner's path) and `make test` (every test).
# Both create .venv on first use. A GPU user installs a CUDA torch into .venv first (see README).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# The CPU wheel that a fresh install takes when no torch is in the venv yet (never a CUDA build).
TORCH_CPU ?= torch==2.13.0

.PHONY: setup setup-test book test notebooks exercises clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# setup: what reading the book needs; setup-test adds the test tools (pytest, nbval, nbclient, ipykernel).
setup: $(PY)
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install $(TORCH_CPU)
	$(PIP) install -e ".[book]"

setup-test: setup
	$(PIP) install -e ".[test,book]"

book: setup
	bash book/build.sh

# nbval runs twice: natively, then on another code path (torch's non-vectorised kernels, MKL's compatible
# path), so that a printed figure only one CPU reproduces fails here rather than on a learner's laptop.
NBVAL    := --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider
OTHERCPU := ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE

test: setup-test
	bash book/ensure_chromium.sh
	EBM_TEACH_QUIET=1 EBM_TEACH_DEVICE=cpu $(PY) -m pytest tests --nbval notebooks $(NBVAL)
	$(OTHERCPU) EBM_TEACH_QUIET=1 EBM_TEACH_DEVICE=cpu $(PY) -m pytest --nbval notebooks $(NBVAL)

notebooks: setup-test
	$(PY) -m ebm_teach.tools.notebooks refresh notebooks/*.py

exercises: setup
	$(PY) -m ebm_teach.grade build

clean:
	rm -rf book/_build .pytest_cache
