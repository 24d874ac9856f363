#!/usr/bin/env bash
# `make sam-local`: the functions as SAM runs them, in Docker, offline.
#
# 1. Docker: installed from Debian if missing; dockerd started if none
#    answers (and stopped again at the end).
# 2. The Lambda base image SAM runs provided.al2023 functions on: pulled when
#    a registry serves it, otherwise made once from Debian's packages
#    (debootstrap) under the same tag. SAM adds its own Runtime Interface
#    Emulator on top either way. Kept in Docker: made again only when missing.
# 3. `sam build --config-env local` (cargo-lambda, x86_64: samconfig.toml),
#    release profile unoptimised (no size optimisation, LTO or single
#    codegen unit): the same code and wiring, built in 5 minutes from clean
#    instead of 9.5 (measured on 2 cores), so that `make test` stays within
#    CI's hour. `sam build` for a deployment keeps them.
# 4. tests/integration/tests/sam_local.rs: every function invoked through
#    `sam local start-lambda` (warm containers: SAM starts once, not once per
#    invocation), `sam local start-api` over every route, against moto and
#    the Mender stand-in on the host's network.
#
# `sam-local.sh --prepare` does 1 and 2 only: `make test` runs it in the
# background while the Rust code compiles, as it mostly waits on downloads.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE=public.ecr.aws/lambda/provided:al2023-x86_64
export DEBIAN_FRONTEND=noninteractive

apt_install() {
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}

command -v dockerd >/dev/null || { echo "== installing docker.io (Debian)"; apt_install docker.io; }

if ! docker info >/dev/null 2>&1; then
  echo "== starting dockerd"
  mkdir -p target
  dockerd >target/dockerd.log 2>&1 &
  dockerd_pid=$!
  trap 'kill "$dockerd_pid" 2>/dev/null; wait "$dockerd_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { tail -20 target/dockerd.log; exit 1; }
fi

if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  if timeout 60 docker pull -q "$BASE_IMAGE" >/dev/null 2>&1; then
    echo "== pulled $BASE_IMAGE"
  else
    echo "== no registry serves $BASE_IMAGE: making it from Debian (debootstrap)"
    command -v debootstrap >/dev/null || apt_install debootstrap
    rootfs=$(mktemp -d)
    debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" \
      http://deb.debian.org/debian >target/debootstrap.log 2>&1 ||
      { tail -20 target/debootstrap.log; exit 1; }
    tar -C "$rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
  fi
fi

[ "${1:-}" = --prepare ] && exit 0

echo "== sam build --config-env local"
CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
  SAM_CLI_TELEMETRY=0 PATH="$PWD/.venv/bin:$PATH" .venv/bin/sam build --config-env local

echo "== sam local start-lambda and sam local start-api"
cargo test -p integration-tests --test sam_local -- --ignored --test-threads 1 --nocapture
