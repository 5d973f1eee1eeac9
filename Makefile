# sferd_nb: every target creates .venv if missing and installs what it needs.
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
# the oldest Python `make` sets up with: the docs tools it installs (mkdocs-material 9.8) need 3.11; the library alone
# needs settings.ini's min_python, which `make test-oldest` checks
MIN_PYTHON ?= 3.11
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev,docs
# torch==2.13.0 resolves to a CPU build on the project's machines; override with your own build, e.g.
#   make test TORCH="torch==2.5.1 --index-url https://download.pytorch.org/whl/cu124"
TORCH ?= torch==2.13.0
# both test runners at once, each with one worker per core (one thread each): every core stays busy
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
NBDEV_TEST_FLAGS ?= --n_workers $(JOBS)
PYTEST_FLAGS ?= -n $(JOBS) --dist worksteal
STAMP := $(VENV)/.installed

.PHONY: test test-oldest oldest-python test-gpu demo install sync-check readme nbtest pytest pytest-only docs docs-check browser clean export

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] >= tuple(map(int, "$(MIN_PYTHON)".split("."))) else f"make: {sys.executable} is Python {sys.version.split()[0]}, and the course tools need Python $(MIN_PYTHON) or newer: install one and name it: make PYTHON=python$(MIN_PYTHON) ... (make test-oldest: OLDEST_PYTHON_BIN=...)")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python setup.py settings.ini
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

## the README's test command: sync check, README check, then the notebook tests and the integration tests side by side
## (each runner's output is printed when it ends)
test: install sync-check browser
	$(MAKE) --no-print-directory -j2 --output-sync=target nbtest pytest-only

# nbdev's standard CI check: exporting and cleaning the notebooks must not change anything tracked
sync-check: install
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean
	$(BIN)/python tools/make_readme.py --check
	$(BIN)/python tools/module_graph.py --check
	if [ -n "$$(git status --porcelain --untracked-files=no)" ]; then
	  echo "ERROR: notebooks and library (or README.md) are out of sync; run 'make export' and commit:" >&2
	  git status --porcelain --untracked-files=no >&2; git --no-pager diff --stat >&2; exit 1
	fi

nbtest: install
	OMP_NUM_THREADS=1 MPLBACKEND=Agg $(BIN)/nbdev_test $(NBDEV_TEST_FLAGS)

pytest: install browser pytest-only

pytest-only:
	OMP_NUM_THREADS=1 MPLBACKEND=Agg $(BIN)/python -m pytest -q $(PYTEST_FLAGS) tests/

## the oldest versions the package declares (settings.ini: min_python and the torch floor of `requirements`): the whole
## suite in .venv-oldest with that Python (OLDEST_PYTHON_BIN, default python3.10) and the newest patch of that torch,
## without the docs tools (they need Python 3.11; the tests that build the site are skipped). TORCH_INDEX picks a build, e.g.
## TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu"
OLDEST_PYTHON := $(shell sed -n 's/^min_python *= *//p' settings.ini)
OLDEST_TORCH := $(shell sed -n 's/^requirements *=.*torch>=\([0-9.]*\).*/\1/p' settings.ini)
OLDEST_PYTHON_BIN ?= python$(OLDEST_PYTHON)
TORCH_INDEX ?=
oldest-python:
	$(OLDEST_PYTHON_BIN) -c 'import sys; v = "%d.%d" % sys.version_info[:2]; sys.exit(0 if v == "$(OLDEST_PYTHON)" else f"make test-oldest: {sys.executable} is Python {v}, not the declared floor $(OLDEST_PYTHON): name one with OLDEST_PYTHON_BIN=...")'

test-oldest: oldest-python
	$(MAKE) --no-print-directory test VENV=.venv-oldest PYTHON=$(OLDEST_PYTHON_BIN) MIN_PYTHON=$(OLDEST_PYTHON) \
	  TORCH='torch~=$(OLDEST_TORCH).0 $(TORCH_INDEX)' EXTRAS=dev

## the GPU suite (needs a CUDA GPU and a CUDA build of torch, e.g. TORCH="torch --index-url .../cu124"): the `gpu`
## pytest marker, then every notebook with its `#| gpu` cells; the default suite runs unchanged with CUDA visible
test-gpu: install
	$(BIN)/python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'make test-gpu: no CUDA GPU is visible to torch')"
	OMP_NUM_THREADS=1 MPLBACKEND=Agg $(BIN)/python -m pytest -q -m gpu tests/
	OMP_NUM_THREADS=1 MPLBACKEND=Agg $(BIN)/nbdev_test --flags gpu --n_workers 1

## regenerate the library, clean the notebooks and rebuild README.md from nbs/index.ipynb
export: install
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean
	$(BIN)/python tools/make_readme.py

readme: install
	$(BIN)/python tools/make_readme.py

## the course's main job on the embedded data
demo: install
	$(BIN)/sferd-demo --out runs/demo

## the docs site (issue 18): every notebook executed (default cells, as nbdev_test) into build/docs/, then site/
## (mkdocs-material, search, KaTeX vendored in docs/assets/katex, API reference); see tools/make_docs.py
docs: install browser
	OMP_NUM_THREADS=1 MPLBACKEND=Agg $(BIN)/python tools/make_docs.py --execute

## `make docs`, then every page of site/ loaded in headless Chromium (tests/test_docs.py, the slow variant);
## screenshots in build/docs/screenshots/
docs-check: docs
	OMP_NUM_THREADS=1 MPLBACKEND=Agg $(BIN)/python -m pytest -q -m slow tests/test_docs.py

# the headless browser of the docs tests (Debian's chromium), installed when missing; best effort: without it the
# browser tests skip with the reason
browser:
	command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1 || {
	  echo "installing chromium (the docs tests' headless browser) ..."
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo)
	  { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; } ||
	    echo "warning: could not install chromium (apt-get install -y chromium); the browser tests will be skipped" >&2
	}

clean:
	rm -rf runs _proc _docs .pytest_cache site build/docs build/docs-test
