# tlsmith — two commands: `make demo` and `make test` (each sets everything up).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit interop peers bench clean fuzz soak mutate

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Real peers the interop tests drive (apt packages; needs root or sudo).
peers:
	@bash scripts/install-peers.sh

demo: $(STAMP)
	$(BIN)/tlsmith demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks fuzz
	$(BIN)/mypy

test: $(STAMP) peers lint
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_handshake.py
	$(BIN)/python benchmarks/bench_resume.py
	$(BIN)/python benchmarks/bench_sockets.py --serve

# 300 slowloris connections, garbage and valid clients against tlsmith serve and TLSServer
# (SOAK_SECONDS each); fails if a valid client is refused or a slow one outlives its deadline.
SOAK_SECONDS ?= 60
soak: $(STAMP)
	$(BIN)/python scripts/soak.py --seconds $(SOAK_SECONDS)

# Each security check disabled in turn on a copy of src/, its tests run: no mutant may
# survive (the list of checks and what kills each is printed).
mutate: $(STAMP)
	$(BIN)/python scripts/mutate.py

# Coverage-guided fuzzing (atheris where it installs, else a mutation loop): every target
# for FUZZ_SECONDS; a crash is saved under fuzz/crashes/ with a regression-test stub.
FUZZ_SECONDS ?= 60
FUZZ_JOBS ?= 1
fuzz: $(STAMP)
	$(BIN)/python -m pip install --quiet atheris || echo "atheris unavailable: mutation fallback"
	$(BIN)/python fuzz/run.py --seconds $(FUZZ_SECONDS) --jobs $(FUZZ_JOBS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build src/*.egg-info
