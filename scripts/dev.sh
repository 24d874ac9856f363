#!/usr/bin/env bash
# Brings the whole system up locally: moto (AWS), the Mender stand-in, and
# the local runner serving every route. Sets the integration up through the
# real API, then prints how to walk a device through its lifecycle.
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_PORT=${MOTO_PORT:-5000}
MENDER_PORT=${MENDER_PORT:-8081}
RUNNER_PORT=${RUNNER_PORT:-8080}
REGION=${IOT_REGION:-eu-west-1}
POLICY=mender-device-policy
STATE=.dev
mkdir -p "$STATE"

export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
MENDER="http://127.0.0.1:$MENDER_PORT"
RUNNER="http://127.0.0.1:$RUNNER_PORT"

trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null' EXIT INT TERM

wait_for() { # url, name
  for _ in $(seq 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "$2 did not start; see $STATE/" >&2; exit 1
}

.venv/bin/moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$STATE/moto.log" 2>&1 &
wait_for "$AWS_ENDPOINT_URL/moto-api/" moto

LISTEN_ADDR="127.0.0.1:$MENDER_PORT" target/debug/mender-standin >"$STATE/mender.env" 2>"$STATE/mender.log" &
wait_for "$MENDER/api/management/v1/useradm/users/me" "Mender stand-in"
until grep -q MENDER_DEVICE_3 "$STATE/mender.env"; do sleep 0.1; done
# shellcheck disable=SC1091
source "$STATE/mender.env"

MENDER_URL="$MENDER" LISTEN_ADDR="127.0.0.1:$RUNNER_PORT" PUBLIC_URL="$RUNNER" \
  target/debug/local-runner >"$STATE/runner.log" 2>&1 &
wait_for "$RUNNER/integration" "local runner"

# The IoT device policy: in AWS the operator creates it once (docs/deploy.md).
.venv/bin/python - "$REGION" "$POLICY" <<'PY'
import sys, boto3
region, name = sys.argv[1], sys.argv[2]
iot = boto3.client("iot", region_name=region)
doc = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}'
iot.create_policy(policyName=name, policyDocument=doc)
PY

# The one-time setup an organization's admin does.
curl -sf -X PUT "$RUNNER/integration" -H "Authorization: Bearer $MENDER_ADMIN_TOKEN" \
  -H 'content-type: application/json' \
  -d "{\"provider\":\"iot-core\",\"description\":\"local demo\",\"credentials\":{\"type\":\"aws\",\"aws\":{
       \"access_key_id\":\"AKIAIOSFODNN7EXAMPLE\",\"secret_access_key\":\"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\",
       \"region\":\"$REGION\",\"device_policy_name\":\"$POLICY\"}}}" >"$STATE/integration.json"

auth_set() { # device id -> its auth set id
  curl -sf -H "Authorization: Bearer $MENDER_ADMIN_TOKEN" "$MENDER/api/management/v2/devauth/devices/$1" |
    .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["auth_sets"][0]["id"])'
}
DEVICE=$MENDER_DEVICE_1
AUTH_SET=$(auth_set "$DEVICE")
H="Authorization: Bearer $MENDER_ADMIN_TOKEN"

cat <<MSG

Local stack is up (logs in $STATE/):
  AWS emulator (moto)   $AWS_ENDPOINT_URL
  Mender stand-in       $MENDER   (organization demo)
  bridge, every route   $RUNNER
The integration is set up:  curl -s -H "$H" $RUNNER/integration

Walk device $DEVICE through its lifecycle (Mender sends the webhooks):
  export TOKEN=$MENDER_ADMIN_TOKEN
  # accept: a Thing, an ACTIVE certificate, and keys in Mender Configure
  curl -s -X PUT -H "Authorization: Bearer \$TOKEN" -H 'content-type: application/json' \\
    -d '{"status":"accepted"}' $MENDER/api/management/v2/devauth/devices/$DEVICE/auth/$AUTH_SET/status
  curl -s -H "Authorization: Bearer \$TOKEN" $MENDER/api/management/v1/deviceconfig/configurations/device/$DEVICE
  # reject: the certificate becomes INACTIVE (accept again re-activates the same one)
  curl -s -X PUT -H "Authorization: Bearer \$TOKEN" -H 'content-type: application/json' \\
    -d '{"status":"rejected"}' $MENDER/api/management/v2/devauth/devices/$DEVICE/auth/$AUTH_SET/status
  # decommission: Thing and certificate are deleted
  curl -s -X DELETE -H "Authorization: Bearer \$TOKEN" $MENDER/api/management/v2/devauth/devices/$DEVICE
  # what AWS holds (moto's API, through boto3 in .venv)
  .venv/bin/python -c "import boto3; print(boto3.client('iot', region_name='$REGION', endpoint_url='$AWS_ENDPOINT_URL').list_things())"

Other devices: $MENDER_DEVICE_IDS. Ctrl-C stops everything.
MSG
wait
