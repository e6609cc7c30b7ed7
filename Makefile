# The project's own set-up. Two entry points (see README):
#   make demo  - fresh virtualenv, install, run the main job on ../shared/data/emodb
#   make test  - fresh virtualenv, install everything, run the whole test suite
# torch is pinned to the CPU build through constraints/cpu.txt so no CUDA build is pulled.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONSTRAINTS := constraints/cpu.txt
EMODB ?= ../shared/data/emodb
OUT ?= out/demo
PYTEST_ARGS ?=

export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# setup.py and the C source: the install compiles embedprobe/cache/_wsum.c (optional, see setup.py)
WSUM := setup.py embedprobe/cache/_wsum.c

$(VENV)/.stamp-demo: pyproject.toml $(CONSTRAINTS) $(WSUM) | $(BIN)/python
	$(BIN)/pip install -q -c $(CONSTRAINTS) torch==2.13.0
	$(BIN)/pip install -q -c $(CONSTRAINTS) -e '.[demo]'
	touch $@

$(VENV)/.stamp-all: pyproject.toml $(CONSTRAINTS) $(WSUM) | $(BIN)/python
	$(BIN)/pip install -q -c $(CONSTRAINTS) torch==2.13.0
	$(BIN)/pip install -q -c $(CONSTRAINTS) -e '.[all,test]'
	touch $@ $(VENV)/.stamp-demo

demo: $(VENV)/.stamp-demo
	EMODB=$(EMODB) OUT=$(OUT) PATH=$(CURDIR)/$(BIN):$$PATH bash scripts/demo.sh

test: $(VENV)/.stamp-all
	tmp=$$(mktemp -d) && HF_HOME=$$tmp/hf TORCH_HOME=$$tmp/torch EMBEDPROBE_REQUIRE_COMPILED=1 \
	  $(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; rm -rf $$tmp; exit $$rc

lint: $(VENV)/.stamp-all
	$(BIN)/ruff check embedprobe tests benchmarks

clean:
	rm -rf $(VENV) out .pytest_cache
