#!/usr/bin/env bash
# Brings the whole system up locally: moto (AWS), the Mender stand-in, the
# local runner serving every route, and mosquitto playing AWS IoT's data
# endpoint for devices. Sets the integration up through the real API, then
# prints how to walk a device through its lifecycle and connect as it.
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_PORT=${MOTO_PORT:-5000}
MENDER_PORT=${MENDER_PORT:-8081}
RUNNER_PORT=${RUNNER_PORT:-8080}
BROKER_PORT=${BROKER_PORT:-8883}
REGION=${IOT_REGION:-eu-west-1}
POLICY=mender-device-policy
STATE=.dev
mkdir -p "$STATE"

trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null' EXIT INT TERM
# shellcheck source=scripts/local-stack.sh
source scripts/local-stack.sh
start_local_stack

# The broker devices connect to (tests/emulator/mosquitto.conf), with the
# emulator's test CA; scripts/dev-device.sh refreshes its revocations.
.venv/bin/python tests/emulator/iot_emulator.py server-cert localhost 127.0.0.1
.venv/bin/python tests/emulator/iot_emulator.py crl "$AWS_ENDPOINT_URL"
sed -e "s|@PORT@|$BROKER_PORT|" -e "s|@CA_DIR@|$EMULATOR_CA_DIR|" \
  -e "s|@ACL@|$PWD/tests/emulator/mosquitto.acl|" tests/emulator/mosquitto.conf >"$STATE/mosquitto.conf"
mosquitto -c "$STATE/mosquitto.conf" 2>"$STATE/mosquitto.log" &
echo $! >"$STATE/mosquitto.pid"
cat >"$STATE/env" <<ENV
MENDER=$MENDER
MENDER_ADMIN_TOKEN=$MENDER_ADMIN_TOKEN
MENDER_OBSERVER_TOKEN=$MENDER_OBSERVER_TOKEN
MENDER_TENANT_ID=$MENDER_TENANT_ID
AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL
EMULATOR_CA_DIR=$EMULATOR_CA_DIR
BROKER_PORT=$BROKER_PORT
ENV

DEVICE=$MENDER_DEVICE_1
AUTH_SET=$(auth_set "$DEVICE")
H="Authorization: Bearer $MENDER_ADMIN_TOKEN"

cat <<MSG

Local stack is up (logs in $STATE/):
  AWS emulator (moto)   $AWS_ENDPOINT_URL
  AWS IoT data endpoint mqtts://localhost:$BROKER_PORT (mosquitto, test CA in $EMULATOR_CA_DIR)
  Mender stand-in       $MENDER   (organization demo)
  bridge, every route   $RUNNER   (ALLOWED_ORGANIZATIONS=${ALLOWED_ORGANIZATIONS:-$MENDER_TENANT_ID})
  web console           $RUNNER/   (sign in with MENDER_ADMIN_TOKEN or MENDER_OBSERVER_TOKEN, in $STATE/env)
The integration is set up (Mender's iot-manager API, served by the bridge):
  curl -s -H "$H" $RUNNER/api/management/v1/iot-manager/integrations
  curl -s -H "$H" $RUNNER/api/management/v1/iot-manager/events   # what it did, by device

Walk device $DEVICE through its lifecycle (Mender sends the webhooks):
  export TOKEN=$MENDER_ADMIN_TOKEN
  # accept: a Thing, an ACTIVE certificate, and keys in Mender Configure
  curl -s -X PUT -H "Authorization: Bearer \$TOKEN" -H 'content-type: application/json' \\
    -d '{"status":"accepted"}' $MENDER/api/management/v2/devauth/devices/$DEVICE/auth/$AUTH_SET/status
  curl -s -H "Authorization: Bearer \$TOKEN" $MENDER/api/management/v1/deviceconfig/configurations/device/$DEVICE
  # be the device: install that configuration with the device's apply script
  # (into $STATE/devices/$DEVICE/) and connect with it (prints the command)
  scripts/dev-device.sh $DEVICE
  # reject: the certificate becomes INACTIVE (accept again re-activates the same one)
  curl -s -X PUT -H "Authorization: Bearer \$TOKEN" -H 'content-type: application/json' \\
    -d '{"status":"rejected"}' $MENDER/api/management/v2/devauth/devices/$DEVICE/auth/$AUTH_SET/status
  scripts/dev-device.sh $DEVICE     # now refused by the broker
  # decommission: Thing and certificate are deleted
  curl -s -X DELETE -H "Authorization: Bearer \$TOKEN" $MENDER/api/management/v2/devauth/devices/$DEVICE
  # what AWS holds (moto's API, through boto3 in .venv)
  .venv/bin/python -c "import boto3; print(boto3.client('iot', region_name='$REGION', endpoint_url='$AWS_ENDPOINT_URL').list_things())"

Other devices: $MENDER_DEVICE_IDS. Ctrl-C stops everything.
MSG
wait
