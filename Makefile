# tlsmith — two commands: `make demo` and `make test` (each sets everything up).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit interop peers bench clean fuzz soak mutate bogo

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

# BoringSSL's conformance runner (BoGo) against tlsmith's shim (python -m tlsmith.bogo,
# tests/bogo/shim), TLS tests only (DTLS, QUIC, TLS 1.0/1.1 and the other entries of
# tests/bogo/config.json disabled); not part of `make test`. BOGO_RUNNER: the runner binary
# (BoringSSL's ssl/test/runner built with `go test -c`), e.g.
#   make bogo BOGO_RUNNER=../shared/bogo/runner.test
# BOGO_JSON: where the runner's -json-output goes; its -pipe log, the shim's list of
# unimplemented flags and the fork server's socket go next to it. A warm fork server
# (tlsmith.bogo.forkserver) saves importing tlsmith once per test. Prints passed / failed /
# unimplemented / disabled per side (exact with the runner's tls-test-names.txt beside it)
# and fails on any unexpected result. BOGO_TEST / BOGO_SKIP: the runner's -test / -skip
# (`;`-separated globs on test names) to run a part of the suite.
BOGO_RUNNER ?=
BOGO_JSON ?= /tmp/tlsmith-bogo/bogo.json
bogo: $(STAMP)
	@test -n "$(BOGO_RUNNER)" || { echo "set BOGO_RUNNER to BoringSSL's runner binary"; exit 2; }
	@mkdir -p "$(dir $(abspath $(BOGO_JSON)))"
	@base="$(basename $(abspath $(BOGO_JSON)))"; sock="$$base.sock"; \
	rm -f "$$base.unimplemented" "$$sock"; \
	TLSMITH_BOGO_UNIMPLEMENTED_LOG="$$base.unimplemented" \
	    $(BIN)/python -m tlsmith.bogo.forkserver "$$sock" & fs=$$!; \
	trap 'kill $$fs 2>/dev/null; rm -f "$$sock"' EXIT; \
	for i in $$(seq 50); do [ -S "$$sock" ] && break; sleep 0.2; done; \
	echo "running the BoGo TLS tests (log: $$base.log)"; \
	TLSMITH_BOGO_FORKSERVER="$$sock" nice -n 10 "$(abspath $(BOGO_RUNNER))" \
	    -shim-path "$(CURDIR)/tests/bogo/shim" -shim-config "$(CURDIR)/tests/bogo/config.json" \
	    -num-workers 2 -allow-unimplemented -pipe -json-output "$(abspath $(BOGO_JSON))" \
	    $(if $(BOGO_TEST),-test '$(BOGO_TEST)') $(if $(BOGO_SKIP),-skip '$(BOGO_SKIP)') \
	    > "$$base.log" 2>&1; status=$$?; \
	$(BIN)/python scripts/bogo_summary.py "$(abspath $(BOGO_JSON))" \
	    --config tests/bogo/config.json \
	    --names "$(dir $(abspath $(BOGO_RUNNER)))tls-test-names.txt" \
	    --unimplemented "$$base.unimplemented" || status=1; \
	exit $$status

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build src/*.egg-info
