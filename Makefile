# rollcall: the two commands are `make dev` and `make test`. Both install what is missing first.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < infra/requirements-dev.txt | cut -d' ' -f1)

# Extra arguments for `rollcall dev`, e.g. make dev ARGS="--port 8080".
ARGS ?=

.PHONY: dev test tools fmt-check clippy unit-and-e2e template-lint bench build clean

## Python tools (moto server, cfn-lint), pinned, in .venv.
$(STAMP): infra/requirements-dev.txt
	@command -v python3 >/dev/null || { echo "python3 is required"; exit 1; }
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r infra/requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

## Rust components used by the checks.
tools:
	@command -v cargo >/dev/null || { echo "Rust (cargo) is required: https://rustup.rs"; exit 1; }
	@cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@cargo clippy --version >/dev/null 2>&1 || rustup component add clippy

## The local stack: moto, the table, tenant `demo` and the API on http://127.0.0.1:3000.
dev: $(STAMP) tools
	cargo run --quiet -p rollcall-cli --bin rollcall -- dev --python $(PY) $(ARGS)

## Everything CI checks.
test: $(STAMP) tools fmt-check clippy template-lint unit-and-e2e

fmt-check:
	cargo fmt --all --check

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

# Unit, property, doc and end-to-end tests; ends with one line counting them all.
unit-and-e2e: $(STAMP)
	@mkdir -p target
	set -o pipefail; ROLLCALL_PYTHON=$(abspath $(PY)) cargo test --workspace 2>&1 | tee target/test-output.txt
	@awk '/^test result:/ { p += $$4; f += $$6 } END { printf "tests: %d passed, %d failed\n", p, f }' target/test-output.txt

template-lint: $(STAMP)
	$(VENV)/bin/cfn-lint infra/template.yaml
	$(VENV)/bin/openapi-spec-validator functions/users-api/openapi.json

## Benchmarks, written into BENCHMARKS.md: requests per API operation, invitations, import
## reading, applying a 100,000-row import, and billing (1,000 tenants × 1,000 users: most of an hour; BILLING_BENCH_TENANTS=20
## for a quick run).
bench: $(STAMP)
	ROLLCALL_PYTHON=$(abspath $(PY)) cargo bench -p rollcall-e2e --bench requests
	ROLLCALL_PYTHON=$(abspath $(PY)) cargo bench -p rollcall-e2e --bench invitations
	cargo bench -p rollcall-e2e --bench import_parse
	ROLLCALL_PYTHON=$(abspath $(PY)) cargo bench -p rollcall-e2e --bench import_apply
	ROLLCALL_PYTHON=$(abspath $(PY)) cargo bench -p rollcall-e2e --bench billing

clean:
	cargo clean
	rm -rf $(VENV)
