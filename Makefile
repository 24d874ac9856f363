# The two commands: `make dev` brings the whole system up locally,
# `make test` runs every test. Both install what they need first.

SHELL := /bin/bash
VENV := .venv
MOTO_VERSION := 5.2.1
# Template linting (setup) and Lambda packaging (package only); all from PyPI.
SAM_CLI_VERSION := 1.170.0
CFN_LINT_VERSION := 1.58.0
CARGO_LAMBDA_VERSION := 1.9.2
ZIGLANG_VERSION := 0.17.1
# API conformance (make conformance); fuzzing (make fuzz).
SCHEMATHESIS_VERSION := 4.32.5
# The console's browser test (make console-test), with Debian's chromium.
SELENIUM_VERSION := 4.50.0
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := webhook shadow settings

.PHONY: setup prepare binaries dev migrate-settings test lint lint-template test-device-script package lambda-tools shellcheck mosquitto \
	conformance console-test chromium sam-local resilience proptest-long fuzz fuzz-build bench

## Installs the pinned AWS emulator (moto), SAM CLI and cfn-lint into .venv,
## shellcheck (Debian) for the device script, and mosquitto (Debian), the
## MQTT broker that plays AWS IoT's data endpoint for devices.
setup: $(VENV)/.moto-$(MOTO_VERSION) $(VENV)/.sam-$(SAM_CLI_VERSION)-$(CFN_LINT_VERSION) shellcheck mosquitto

$(VENV)/.moto-$(MOTO_VERSION):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'moto[server]==$(MOTO_VERSION)'
	touch $@

# SAM CLI and cfn-lint validate template.yaml offline. moto is named again
# so that pip resolves the shared dependencies (boto3, …) for all three.
$(VENV)/.sam-$(SAM_CLI_VERSION)-$(CFN_LINT_VERSION): $(VENV)/.moto-$(MOTO_VERSION)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check \
		'aws-sam-cli==$(SAM_CLI_VERSION)' 'cfn-lint==$(CFN_LINT_VERSION)' 'moto[server]==$(MOTO_VERSION)'
	touch $@

## Installs cargo-lambda and the zig toolchain it cross-compiles with into
## .venv (`make package` and `sam build` need them; not `make test`).
lambda-tools: $(VENV)/.cargo-lambda-$(CARGO_LAMBDA_VERSION)-$(ZIGLANG_VERSION)

$(VENV)/.cargo-lambda-$(CARGO_LAMBDA_VERSION)-$(ZIGLANG_VERSION): $(VENV)/.moto-$(MOTO_VERSION)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check \
		'cargo-lambda==$(CARGO_LAMBDA_VERSION)' 'ziglang==$(ZIGLANG_VERSION)'
	touch $@

## Installs shellcheck, and busybox (the device script is also tested on a
## busybox-only PATH), from Debian if missing; updates the lists only when needed.
shellcheck:
	@command -v shellcheck >/dev/null && command -v busybox >/dev/null || { \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq shellcheck busybox >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq shellcheck busybox >/dev/null; }; }

## Installs mosquitto and its clients from Debian if missing (the broker is
## not started as a service: the tests and `make dev` start their own).
mosquitto:
	@command -v mosquitto >/dev/null && command -v mosquitto_pub >/dev/null || { \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq --no-install-recommends mosquitto mosquitto-clients >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends mosquitto mosquitto-clients >/dev/null; }; }

## Lints the SAM template offline (cfn-lint, then SAM's own validation and lint).
lint-template: $(VENV)/.sam-$(SAM_CLI_VERSION)-$(CFN_LINT_VERSION)
	$(VENV)/bin/cfn-lint template.yaml
	SAM_CLI_TELEMETRY=0 $(VENV)/bin/sam validate --lint --template-file template.yaml

## The device-side Mender Configure script: shellcheck, then its tests in a temporary root.
test-device-script: shellcheck
	shellcheck scripts/device/mender-configure-aws-iot tests/device-script/run.sh scripts/*.sh
	tests/device-script/run.sh

## Builds every function for arm64 and x86_64 with cargo-lambda (release
## profile) and prints each binary's size. Slow: not part of `make test`.
package: lambda-tools
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" scripts/package.sh

## Every performance measurement (cold start, size, memory, provisioning,
## bulk acceptance, ingress, shadow) on this machine, written to
## docs/performance.md and docs/performance.json. Slow (builds the release
## binaries first, as `make package`); not part of `make test`.
bench: setup lambda-tools sam-local
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" nice -n 10 scripts/package.sh
	nice -n 10 cargo run --quiet -p bench

## The local runner and the Mender stand-in, built by `cargo test` itself:
## `cargo build --bin …` resolves other dependency features than
## `cargo test --workspace` (dev-dependencies), and would build every
## dependency a second time. After `cargo test` this is a no-op.
binaries:
	cargo test --workspace --no-run --quiet

## Upgrading a deployment from settings schema 1 (docs/deploy.md,
## "Upgrading"): `make migrate-settings STEP=copy TABLE=…` before `sam
## deploy`, `STEP=finish` after, with the AWS credentials and region of the
## stack. TABLE is the stack's TableName output, PREFIX its SecretsPrefix.
STEP ?= copy
PREFIX ?= mender-iot-bridge/
migrate-settings:
	@test -n "$(TABLE)" || { echo "TABLE=<the stack's TableName output> is required" >&2; exit 2; }
	cargo run --quiet --release -p bridge --bin migrate-settings -- $(STEP) $(TABLE) $(PREFIX)

## Starts moto, the Mender stand-in and the local runner; Ctrl-C stops them.
dev: setup binaries
	scripts/dev.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

## Every test: lint (code, template, device script), unit, stand-in
## conformance, end-to-end against moto (fault matrix, concurrency and
## security suites included), API conformance (schemathesis), the web
## console in chromium, then the functions under `sam local` in Docker.
##
## What mostly downloads and installs runs in the background from the start
## (scripts/background.sh, its log target/background.log): `setup` and the
## template lint that needs it, then Docker, the Lambda base image, chromium
## and the PyPI tools of conformance, console-test and sam-local (`prepare`). Meanwhile the Rust
## code is linted and compiled; each later step waits for what it needs.
test:
	@scripts/background.sh start
	$(MAKE) --no-print-directory lint
	@scripts/background.sh await setup
	$(MAKE) --no-print-directory test-device-script
	cargo test --workspace
	@scripts/background.sh await all
	$(MAKE) --no-print-directory conformance
	$(MAKE) --no-print-directory console-test
	$(MAKE) --no-print-directory sam-local

## What conformance, console-test and sam-local need beyond `setup`:
## Docker and the Lambda base image, chromium, then the PyPI tools.
prepare: setup
	scripts/sam-local.sh --prepare
	$(MAKE) --no-print-directory chromium $(VENV)/.schemathesis-$(SCHEMATHESIS_VERSION) \
		$(VENV)/.selenium-$(SELENIUM_VERSION) lambda-tools

## `sam local start-lambda` invoking every function with its sample event and `sam local
## start-api` over every route, in Docker, against moto and the Mender
## stand-in: installs Docker (Debian) if missing, starts dockerd if none runs,
## makes the Lambda base image once when no registry serves it, then `sam
## build --config-env local` (scripts/sam-local.sh).
sam-local: setup lambda-tools
	scripts/sam-local.sh

## schemathesis into .venv; moto, SAM CLI and cfn-lint are named again so
## that pip resolves the shared dependencies for all of them.
$(VENV)/.schemathesis-$(SCHEMATHESIS_VERSION): $(VENV)/.sam-$(SAM_CLI_VERSION)-$(CFN_LINT_VERSION)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'schemathesis==$(SCHEMATHESIS_VERSION)' \
		'aws-sam-cli==$(SAM_CLI_VERSION)' 'cfn-lint==$(CFN_LINT_VERSION)' 'moto[server]==$(MOTO_VERSION)'
	touch $@

## API conformance: schemathesis against docs/openapi.yaml and a local
## stack (moto, the Mender stand-in, the local runner) on free ports.
conformance: $(VENV)/.schemathesis-$(SCHEMATHESIS_VERSION) binaries
	scripts/conformance.sh

## Installs Debian's chromium and its WebDriver (chromium-driver) if missing.
chromium:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }; }

$(VENV)/.selenium-$(SELENIUM_VERSION): $(VENV)/.moto-$(MOTO_VERSION)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'selenium==$(SELENIUM_VERSION)' 'moto[server]==$(MOTO_VERSION)'
	touch $@

## The web console in chromium over WebDriver, against a local stack
## (scripts/console-test.sh); screenshots in target/console-screenshots/.
console-test: setup chromium $(VENV)/.selenium-$(SELENIUM_VERSION) binaries
	scripts/console-test.sh

## The whole fault matrix, injected timeouts included (`make test` runs
## throttling, 5xx and resets; timeouts take minutes and need a quiet machine).
resilience: setup
	FAULT_MATRIX_TIMEOUTS=1 cargo test -p integration-tests --test fault_matrix -- --nocapture

## The property tests with many more cases (CI runs a few).
proptest-long: setup
	PROPTEST_CASES=256 cargo test -p bridge --test properties && PROPTEST_CASES=256 cargo test -p integration-tests --test concurrency -- --nocapture

## Builds the cargo-fuzz targets (fuzz/, its own workspace). cargo-fuzz
## needs nightly features: RUSTC_BOOTSTRAP=1 enables them on stable.
fuzz-build:
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz build -O

## Runs each fuzz target for FUZZ_SECONDS (default 60) from the corpus in
## fuzz/corpus/<target>/ (new inputs go to target/fuzz-corpus/, not the repo).
fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p target/fuzz-corpus/$$t; \
		(cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -O $$t ../target/fuzz-corpus/$$t corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1) > target/fuzz-$$t.log 2>&1; \
		status=$$?; grep -E '^(stat::number_of_executed_units|stat::new_units_added|Done)' target/fuzz-$$t.log | sed "s/^/$$t: /"; \
		[ $$status -eq 0 ] || { tail -40 target/fuzz-$$t.log; echo "fuzz target $$t failed: target/fuzz-$$t.log"; exit 1; }; \
	done
