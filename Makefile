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

.PHONY: setup dev test lint lint-template test-device-script package lambda-tools shellcheck

## Installs the pinned AWS emulator (moto), SAM CLI and cfn-lint into .venv,
## and shellcheck (Debian) for the device script.
setup: $(VENV)/.moto-$(MOTO_VERSION) $(VENV)/.sam-$(SAM_CLI_VERSION)-$(CFN_LINT_VERSION) shellcheck

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

## Lints the SAM template offline (cfn-lint, then SAM's own validation and lint).
lint-template: $(VENV)/.sam-$(SAM_CLI_VERSION)-$(CFN_LINT_VERSION)
	$(VENV)/bin/cfn-lint template.yaml
	SAM_CLI_TELEMETRY=0 $(VENV)/bin/sam validate --lint --template-file template.yaml

## The device-side Mender Configure script: shellcheck, then its tests in a temporary root.
test-device-script: shellcheck
	shellcheck scripts/device/mender-configure-aws-iot tests/device-script/run.sh
	tests/device-script/run.sh

## Builds every function for arm64 and x86_64 with cargo-lambda (release
## profile) and prints each binary's size. Slow: not part of `make test`.
package: lambda-tools
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" scripts/package.sh

## Starts moto, the Mender stand-in and the local runner; Ctrl-C stops them.
dev: setup
	cargo build --bin local-runner --bin mender-standin
	scripts/dev.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

## Every test: lint (code, template, device script), unit, stand-in
## conformance, end-to-end against moto.
test: setup lint lint-template test-device-script
	cargo test --workspace
