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

trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null' EXIT INT TERM
# shellcheck source=scripts/local-stack.sh
source scripts/local-stack.sh
start_local_stack

DEVICE=$MENDER_DEVICE_1
AUTH_SET=$(auth_set "$DEVICE")
H="Authorization: Bearer $MENDER_ADMIN_TOKEN"

cat <<MSG

Local stack is up (logs in $STATE/):
  AWS emulator (moto)   $AWS_ENDPOINT_URL
  Mender stand-in       $MENDER   (organization demo)
  bridge, every route   $RUNNER   (ALLOWED_ORGANIZATIONS=${ALLOWED_ORGANIZATIONS:-$MENDER_TENANT_ID})
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
