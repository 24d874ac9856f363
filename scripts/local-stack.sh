# shellcheck shell=bash
# Sourced by dev.sh, conformance.sh and console-test.sh: starts moto (AWS),
# the Mender stand-in and the local runner, creates the IoT device policy
# (in AWS the operator does that once) and sets the integration up through
# the real API.
#
# Expects STATE (a directory for logs), REGION and POLICY; optionally
# MOTO_PORT, MENDER_PORT and RUNNER_PORT (free ports otherwise), and
# BIND_HOST (where moto and the stand-in listen: 127.0.0.1 unless set, e.g.
# to Docker's bridge address for functions under `sam local`); sets AWS_*, MENDER, RUNNER, the stand-in's MENDER_*
# variables (its tenant id, admin token, device ids) and
# STATE/integration.json (unless SKIP_SETUP=1: then nothing is set up,
# for a caller that sets up itself). The runner allows only the stand-in's
# organization to set up (ALLOWED_ORGANIZATIONS, unless already set).
# The caller's EXIT trap stops the background processes.

# Ports the caller did not choose are free ones (tests beside each other).
free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MOTO_PORT=${MOTO_PORT:-$(free_port)}
MENDER_PORT=${MENDER_PORT:-$(free_port)}
RUNNER_PORT=${RUNNER_PORT:-$(free_port)}

export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
BIND_HOST=${BIND_HOST:-127.0.0.1}
export AWS_ENDPOINT_URL="http://$BIND_HOST:$MOTO_PORT"
MENDER="http://$BIND_HOST:$MENDER_PORT"
RUNNER="http://127.0.0.1:$RUNNER_PORT"

wait_for() { # url, name
  for _ in $(seq 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "$2 did not start" >&2; tail -n 20 "$STATE"/*.log >&2; exit 1
}

start_local_stack() {
  # moto, with AWS IoT's certificates signed by a test CA (tests/emulator).
  EMULATOR_CA_DIR="$(cd "$STATE" && pwd)/ca"
  export EMULATOR_CA_DIR
  rm -rf "$EMULATOR_CA_DIR"
  .venv/bin/python tests/emulator/iot_emulator.py serve -H "$BIND_HOST" -p "$MOTO_PORT" >"$STATE/moto.log" 2>&1 &
  wait_for "$AWS_ENDPOINT_URL/moto-api/" moto

  LISTEN_ADDR="$BIND_HOST:$MENDER_PORT" target/debug/mender-standin >"$STATE/mender.env" 2>"$STATE/mender.log" &
  wait_for "$MENDER/api/management/v1/useradm/users/me" "Mender stand-in"
  until grep -q MENDER_DEVICE_3 "$STATE/mender.env"; do sleep 0.1; done
  # shellcheck disable=SC1091
  source "$STATE/mender.env"

  # Only the stand-in's organization may set up, as an operator would list
  # theirs (ALLOWED_ORGANIZATIONS from the caller's environment wins).
  MENDER_URL="$MENDER" LISTEN_ADDR="127.0.0.1:$RUNNER_PORT" PUBLIC_URL="$RUNNER" \
    ALLOWED_ORGANIZATIONS="${ALLOWED_ORGANIZATIONS:-$MENDER_TENANT_ID}" \
    target/debug/local-runner >"$STATE/runner.log" 2>&1 &
  wait_for "$RUNNER/api/management/v1/iot-manager/integrations" "local runner"

  .venv/bin/python - "$REGION" "$POLICY" <<'PY'
import sys, boto3
region, name = sys.argv[1], sys.argv[2]
iot = boto3.client("iot", region_name=region)
doc = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}'
iot.create_policy(policyName=name, policyDocument=doc)
PY

  # The one-time setup an organization's admin does.
  [ "${SKIP_SETUP:-0}" = 1 ] && return 0
  curl -sf -X POST "$RUNNER/api/management/v1/iot-manager/integrations" -H "Authorization: Bearer $MENDER_ADMIN_TOKEN" \
    -H 'content-type: application/json' \
    -d "{\"provider\":\"iot-core\",\"description\":\"local stack\",\"credentials\":{\"type\":\"aws\",\"aws\":{
         \"access_key_id\":\"AKIAIOSFODNN7EXAMPLE\",\"secret_access_key\":\"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\",
         \"region\":\"$REGION\",\"device_policy_name\":\"$POLICY\"}}}" >"$STATE/integration.json"
}

auth_set() { # device id -> its auth set id
  curl -sf -H "Authorization: Bearer $MENDER_ADMIN_TOKEN" "$MENDER/api/management/v2/devauth/devices/$1" |
    .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["auth_sets"][0]["id"])'
}
