#!/usr/bin/env bash
# `make test`'s background half: what mostly installs and downloads, so that
# it overlaps the Rust code's linting and compiling instead of preceding it.
#
#   background.sh start        setup's tools (PyPI, Debian), then the template
#                              lint that needs them, then Docker and the Lambda
#                              base image, then the PyPI tools of conformance
#                              and sam-local (make prepare); returns at once
#   background.sh await STAGE  waits until STAGE (setup, or all) has ended;
#                              fails, showing the log, if it failed
#
# Everything it prints goes to target/background.log.
set -uo pipefail
cd "$(dirname "$0")/.." || exit
log=target/background.log

case "${1:-}" in
start)
  mkdir -p target
  rm -f target/background-setup.status target/background-all.status
  : >"$log"
  (
    make --no-print-directory setup
    status=$?
    echo "$status" >target/background-setup.status
    if [ "$status" = 0 ]; then
      make --no-print-directory lint-template prepare
      status=$?
    fi
    echo "$status" >target/background-all.status
  ) </dev/null >>"$log" 2>&1 &
  ;;
await)
  stage=${2:?setup or all}
  until [ -f "target/background-$stage.status" ]; do sleep 2; done
  [ "$(cat "target/background-$stage.status")" = 0 ] && exit 0
  tail -40 "$log"
  echo "the background step ($stage) failed: $log" >&2
  exit 1
  ;;
*)
  sed -n '2,13p' "$0" >&2
  exit 2
  ;;
esac
