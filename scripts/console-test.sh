#!/usr/bin/env bash
# The web console in a real browser: Debian's chromium, driven over
# WebDriver (chromium-driver, through Python's selenium), against a local
# stack (moto, the Mender stand-in, the local runner on free ports) with no
# integration yet: tests/console/console_test.py signs in, sets up, runs,
# edits a shadow, and saves a screenshot of each page under
# target/console-screenshots/.
#
# Needs target/debug/{local-runner,mender-standin}, chromium and
# chromium-driver, and .venv with moto and selenium (`make console-test`
# installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

STATE=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$STATE"' EXIT INT TERM
REGION=eu-west-1
POLICY=mender-device-policy

# shellcheck source=scripts/local-stack.sh
source scripts/local-stack.sh
RUST_LOG=warn SKIP_SETUP=1 start_local_stack
export MENDER RUNNER REGION POLICY MENDER_ADMIN_TOKEN MENDER_OBSERVER_TOKEN MENDER_DEVICE_IDS
export SCREENSHOTS=target/console-screenshots
rm -rf "$SCREENSHOTS"
mkdir -p "$SCREENSHOTS"
if ! .venv/bin/python tests/console/console_test.py; then
  tail -n 30 "$STATE/runner.log" >&2
  exit 1
fi
