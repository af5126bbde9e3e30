# The reproduction suite's commands; `make help` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV       ?= .venv## the Python environment make setup creates
PY         := $(VENV)/bin/python
TENSORFLOW ?= tensorflow-cpu==2.21.0## on a GPU machine: make setup TENSORFLOW='tensorflow[and-cuda]==2.21.0'
BUDGET     ?= paper## paper (GPU work) | long (days on 2 cores) | quick (most of a day) | smoke (minutes)
SEEDS      ?= 1## seeds per configuration
JOBS       ?= auto## runs at once on this machine: auto (measured: one per core if that is faster) | N
LAUNCHER   ?= basic## basic (this machine, JOBS at once) | joblib | submitit_local | slurm (conf/hydra/launcher/slurm.yaml)
RESULTS    ?= results## the root of all run folders, figures and tables
ARGS       ?=## more run overrides, e.g. ARGS='depth=20,56 data.dir=/data/tfds'

# Unless TENSORFLOW= is given (command line or environment), every target keeps the TensorFlow that
# .venv has: after `make setup TENSORFLOW='tensorflow[and-cuda]==...'` the other targets train on the GPU.
ifeq ($(origin TENSORFLOW),file)
TENSORFLOW := $(or $(shell cat $(VENV)/.installed 2>/dev/null),$(TENSORFLOW))
endif

.PHONY: help setup test test-fast test-all reproduce-cifar interventions interventions-long park figures bench tensorboard

help: ## list the targets and variables
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'
	@echo "variables (make VAR=value), with their defaults:"
	@grep -E '^[A-Z]+ +\?=' $(MAKEFILE_LIST) | sed -E 's/ +\?= */=/; s/## */\t# /' | awk -F'\t' '{printf "  %-40s %s\n", $$1, $$2}'
	@echo "TFDS_DATA_DIR=<folder> and TFDS_DOWNLOAD=false in the environment point the runs at an existing copy of cifar10"

setup: $(VENV)/.installed ## create .venv with the pinned dependencies and $(TENSORFLOW)
	@grep -qxF '$(TENSORFLOW)' $(VENV)/.installed || { \
		echo "installing $(TENSORFLOW) in place of $$(cat $(VENV)/.installed)"; \
		$(PY) -m pip uninstall --quiet --yes tensorflow tensorflow-cpu 2>/dev/null; \
		$(PY) -m pip install --quiet --disable-pip-version-check '$(TENSORFLOW)' && \
		echo '$(TENSORFLOW)' > $(VENV)/.installed; }

# The stamp holds the TensorFlow requirement it was made with: another TENSORFLOW= installs that.
$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt '$(TENSORFLOW)'
	echo '$(TENSORFLOW)' > $@

test: setup ## the test suite without the slow tests (what CI runs)
	$(PY) -m pytest -m "not slow"

test-fast: setup ## the fast tier: no processes of their own, no real data, no Slurm (~3-9 min on 2 cores)
	$(PY) -m pytest -m "not slow and not heavy and not slurm and not real_data"

test-all: setup ## every test, the slow ones included
	$(PY) -m pytest

# The figures follow a finished sweep and one whose runs failed (they show what finished), not a
# refused value (exit 2) or a stopped sweep (128 + the signal: Ctrl-C, SIGTERM).
reproduce-cifar: setup ## the sweep (BUDGET, SEEDS, JOBS, LAUNCHER), then the figures and tables
	$(PY) -m src.sweep budget=$(BUDGET) seeds=$(SEEDS) jobs=$(JOBS) launcher=$(LAUNCHER) \
		results_dir=$(RESULTS) $(ARGS); \
	status=$$?; [ $$status -eq 2 ] || [ $$status -gt 128 ] && exit $$status; \
	$(PY) -m experiments.figures $(RESULTS)/$(BUDGET) && exit $$status

interventions: setup ## plain-56 with each intervention of conf/interventions.yaml (quick, 3 seeds: 1-1.5 h on 2 cores), judged
	$(PY) -m experiments.interventions train $(RESULTS); \
	status=$$?; [ $$status -eq 2 ] || [ $$status -gt 128 ] && exit $$status; \
	$(PY) -m experiments.interventions $(RESULTS) && exit $$status

interventions-long: setup ## each intervention that lifted plain-56 at quick, at the long budget (1 seed: hours), beside the baseline
	$(PY) -m experiments.interventions train-long $(RESULTS); \
	status=$$?; [ $$status -eq 2 ] || [ $$status -gt 128 ] && exit $$status; \
	$(PY) -m experiments.interventions $(RESULTS) && exit $$status

# Park needs no set-up (git and the standard library): it runs when a machine is about to go.
park: ## commit every unfinished run under $(RESULTS) with its last checkpoint (any clone resumes it)
	@$(if $(wildcard $(PY)),$(PY),python3) -m src.park $(RESULTS)

figures: setup ## figures and tables of every $(RESULTS)/<budget>/ from its run folders, and of the interventions
	$(PY) -m experiments.figures $(RESULTS)
	@if [ -d $(RESULTS)/interventions ]; then $(PY) -m experiments.interventions $(RESULTS); fi

bench: setup ## images/s: bare step vs trainer vs input pipeline, precisions, XLA, FLOP/s, packing
	$(PY) -m src.bench $(ARGS)

tensorboard: setup ## serve the TensorBoard scalars of every run under $(RESULTS) (localhost:6006)
	$(PY) -m tensorboard.main --logdir $(RESULTS) --host 127.0.0.1 --port 6006
