# The two commands: `make dev` brings the whole system up locally,
# `make test` runs every test. Both install what they need first.

SHELL := /bin/bash
VENV := .venv
MOTO_VERSION := 5.2.1

.PHONY: setup dev test lint

## Installs the pinned AWS emulator (moto) into .venv.
setup: $(VENV)/.moto-$(MOTO_VERSION)

$(VENV)/.moto-$(MOTO_VERSION):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'moto[server]==$(MOTO_VERSION)'
	touch $@

## Starts moto, the Mender stand-in and the local runner; Ctrl-C stops them.
dev: setup
	cargo build --bin local-runner --bin mender-standin
	scripts/dev.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

## Every test: unit, stand-in conformance, end-to-end against moto.
test: setup lint
	cargo test --workspace
