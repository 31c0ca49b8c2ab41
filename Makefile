# rollcall: the two commands are `make dev` and `make test`. Both install what is missing first.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < infra/requirements-dev.txt | cut -d' ' -f1)

# Extra arguments for `rollcall dev`, e.g. make dev ARGS="--port 8080".
ARGS ?=

.PHONY: dev demo test tools browser-tools fmt-check clippy unit-and-e2e other-dates api-fuzz template-lint bench build clean

# Where `make build` builds for: arm64 (the template's default) or x86_64.
ARCH ?= arm64
FUNCTIONS := users-api auth send-invitations bulk-import billing-snapshot

## Python tools (moto server, cfn-lint), pinned, in .venv.
$(STAMP): infra/requirements-dev.txt
	@command -v python3 >/dev/null || { echo "python3 is required"; exit 1; }
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r infra/requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

## Tools that pin versions of their own, each in its own venv: .venvs/sam (sam validate),
## .venvs/checkov, .venvs/build (cargo-lambda and Zig), .venvs/schemathesis.
tool_stamp = .venvs/$(1)/.installed-$(shell cksum < infra/requirements-$(1).txt | cut -d' ' -f1)
define tool_venv
$$(call tool_stamp,$(1)): infra/requirements-$(1).txt
	@command -v python3 >/dev/null || { echo "python3 is required"; exit 1; }
	@test -x .venvs/$(1)/bin/python || python3 -m venv .venvs/$(1)
	.venvs/$(1)/bin/python -m pip install --quiet --disable-pip-version-check -r infra/requirements-$(1).txt
	@rm -f .venvs/$(1)/.installed-* && touch $$@
endef
$(foreach tool,sam checkov build schemathesis,$(eval $(call tool_venv,$(tool))))

## Rust components used by the checks.
tools:
	@command -v cargo >/dev/null || { echo "Rust (cargo) is required: https://rustup.rs"; exit 1; }
	@cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@cargo clippy --version >/dev/null 2>&1 || rustup component add clippy

## The local stack: moto, the table, tenant `demo` and the API on http://127.0.0.1:3000.
dev: $(STAMP) tools
	cargo run --quiet -p rollcall-cli --bin rollcall -- dev --python $(PY) $(ARGS)

## A scripted tour on a fresh local stack of its own, which stops when the tour is over.
demo: $(STAMP) tools
	RUST_LOG=$${RUST_LOG:-warn} cargo run --quiet -p rollcall-cli --bin rollcall -- demo --python $(PY)

## Everything CI checks.
test: $(STAMP) tools fmt-check clippy template-lint unit-and-e2e other-dates api-fuzz
	@awk '/^test result:/ { p += $$4; f += $$6 } END { printf "tests: %d passed, %d failed\n", p, f }' target/test-output.txt target/other-dates-output.txt

fmt-check:
	cargo fmt --all --check

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

## The browser tests' tools: Debian's Chromium and ChromeDriver (apt-get, when missing) and
## axe-core (npm, pinned by tests/browser/package-lock.json).
BROWSER_STAMP := tests/browser/node_modules/.installed-$(shell cksum < tests/browser/package-lock.json | cut -d' ' -f1)
$(BROWSER_STAMP): tests/browser/package-lock.json
	@command -v npm >/dev/null || { echo "npm is required for the browser tests (axe-core): apt-get install npm"; exit 1; }
	npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
	@rm -f tests/browser/node_modules/.installed-* && touch $@

## (A Japanese font, too, so the pages' screenshots show their Japanese.)
BROWSER_PACKAGES := chromium chromium-driver fonts-ipafont-gothic
browser-tools: $(BROWSER_STAMP)
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ] || [ -z "$$(fc-list :lang=ja 2>/dev/null)" ]; then \
	  echo "Installing Debian's $(BROWSER_PACKAGES) for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -q $(BROWSER_PACKAGES) >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null && apt-get install -y -q $(BROWSER_PACKAGES) >/dev/null; }; \
	  else sudo apt-get install -y -q $(BROWSER_PACKAGES) >/dev/null; fi; \
	fi
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || { echo "Chromium could not be installed: run 'apt-get install $(BROWSER_PACKAGES)' as root, then make test again"; exit 1; }

# Unit, property, doc and end-to-end tests; ends with one line counting them all.
unit-and-e2e: $(STAMP) browser-tools
	@mkdir -p target
	set -o pipefail; ROLLCALL_PYTHON=$(abspath $(PY)) cargo test --workspace 2>&1 | tee target/test-output.txt
	@awk '/^test result:/ { p += $$4; f += $$6 } END { printf "tests: %d passed, %d failed\n", p, f }' target/test-output.txt

# The CLI and demo tests again, as whole processes on other dates through libfaketime (Debian's
# libfaketime, installed when missing): hours before and after a JST month end, and a leap day.
# libfaketime starts each process's clock at the given time when that process starts, so these
# runs stay hours away from the boundary; the exact boundaries are tested in-process on the
# injected clock. Monotonic time stays real (tokio's timers stall otherwise).
OTHER_DATES := 2027-01-31T09:00:00 2027-01-31T21:00:00 2028-02-29T03:00:00
faketime_lib = ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -n 1

other-dates: $(STAMP)
	@if [ -z "$$($(faketime_lib))" ]; then \
	  echo "Installing libfaketime (Debian's package) for the tests on other dates"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -q libfaketime >/dev/null || \
	    { apt-get update -q >/dev/null && apt-get install -y -q libfaketime >/dev/null; }; \
	  else sudo apt-get install -y -q libfaketime >/dev/null; fi; \
	fi
	@test -n "$$($(faketime_lib))" || { echo "libfaketime is missing and could not be installed: apt-get install libfaketime"; exit 1; }
	@mkdir -p target && : > target/other-dates-output.txt
	@set -o pipefail; lib=$$($(faketime_lib)); \
	bin=$$(cargo test -p rollcall-cli --test cli --no-run --message-format=json 2>/dev/null \
	  | $(PY) -c 'import json,sys; print([m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable") and m["target"]["name"] == "cli"][0])'); \
	for at in $(OTHER_DATES); do \
	  echo "== the CLI and demo tests on $$at UTC (libfaketime)"; \
	  TZ=UTC LD_PRELOAD=$$lib FAKETIME="@$${at/T/ }" FAKETIME_DONT_FAKE_MONOTONIC=1 \
	    ROLLCALL_TEST_DATE=$${at%T*} ROLLCALL_PYTHON=$(abspath $(PY)) $$bin 2>&1 \
	    | tee -a target/other-dates-output.txt || exit 1; \
	done

# schemathesis against a local stack of its own (infra/schemathesis/run.py): every request the
# OpenAPI document calls valid is accepted, every one it calls invalid is refused, none gets a
# 5xx. A fixed seed and 40 examples an operation: about a minute.
api-fuzz: $(STAMP) $(call tool_stamp,schemathesis)
	cargo build --quiet -p rollcall-cli --bin rollcall
	.venvs/schemathesis/bin/python infra/schemathesis/run.py target/debug/rollcall $(abspath $(PY))

template-lint: $(STAMP) $(call tool_stamp,sam) $(call tool_stamp,checkov)
	$(VENV)/bin/cfn-lint infra/template.yaml
	SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 .venvs/sam/bin/sam validate --lint --template-file infra/template.yaml
	.venvs/checkov/bin/checkov --quiet --compact --skip-download --framework cloudformation --file infra/template.yaml
	$(VENV)/bin/openapi-spec-validator functions/users-api/openapi.json

## Every function built for Lambda (target/lambda/<function>/bootstrap) with cargo-lambda.
## ARCH=arm64 (default) needs Rust's aarch64-unknown-linux-gnu target; ARCH=x86_64 doesn't.
build: $(call tool_stamp,build) tools
	@if [ "$(ARCH)" != arm64 ] && [ "$(ARCH)" != x86_64 ]; then echo "ARCH is arm64 or x86_64, not $(ARCH)"; exit 1; fi
	@if [ "$(ARCH)" = arm64 ] && ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then \
	  echo "Installing Rust's arm64 Linux target: rustup target add aarch64-unknown-linux-gnu"; \
	  if ! timeout 120 rustup target add aarch64-unknown-linux-gnu; then \
	    echo; \
	    echo "make build: the arm64 target (aarch64-unknown-linux-gnu) can't be installed on this machine:"; \
	    echo "rustup could not download it. Either install it where rustup can reach its server, or"; \
	    echo "build for x86_64, which needs nothing more:"; \
	    echo; \
	    echo "    make build ARCH=x86_64"; \
	    echo "    sam build && sam deploy --guided --parameter-overrides Architecture=x86_64"; \
	    echo; \
	    echo "x86_64 Lambda costs about 20 % more per millisecond than arm64; the code is the same."; \
	    exit 1; \
	  fi; \
	fi
	PATH="$(abspath .venvs/build/bin):$$PATH" cargo lambda build --release \
	  $(if $(filter arm64,$(ARCH)),--arm64,--x86-64) $(addprefix --package ,$(FUNCTIONS))
	@for f in $(FUNCTIONS); do ls -l target/lambda/$$f/bootstrap; done

## Benchmarks, written into BENCHMARKS.md: requests per API operation, invitations, import
## reading, applying a 100,000-row import, and billing (1,000 tenants × 1,000 users: most of an hour; BILLING_BENCH_TENANTS=20
## for a quick run).
bench: $(STAMP)
	ROLLCALL_PYTHON=$(abspath $(PY)) cargo bench -p rollcall-e2e --bench requests
	ROLLCALL_PYTHON=$(abspath $(PY)) cargo bench -p rollcall-e2e --bench invitations
	ROLLCALL_PYTHON=$(abspath $(PY)) cargo bench -p rollcall-e2e --bench signin
	ROLLCALL_PYTHON=$(abspath $(PY)) cargo bench -p rollcall-e2e --bench pages
	cargo bench -p rollcall-e2e --bench import_parse
	cargo bench -p rollcall-e2e --bench cold_start
	ROLLCALL_PYTHON=$(abspath $(PY)) cargo bench -p rollcall-e2e --bench import_apply
	ROLLCALL_PYTHON=$(abspath $(PY)) cargo bench -p rollcall-e2e --bench billing

clean:
	cargo clean
	rm -rf $(VENV) .venvs .aws-sam
