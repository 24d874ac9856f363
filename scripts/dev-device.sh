#!/usr/bin/env bash
# `make dev`'s device: installs what Mender Configure holds for DEVICE with
# the device's own apply script (into .dev/devices/DEVICE/), brings the
# broker's revocations up to date with the emulator, prints the command that
# connects as the device, and runs it: a shadow update published on the
# device's own topic, over mutual TLS with the installed files.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${1:?usage: scripts/dev-device.sh DEVICE_ID}
STATE=.dev
# shellcheck disable=SC1091
source "$STATE/env"

root="$PWD/$STATE/devices/$DEVICE"
mkdir -p "$root"
curl -sf -H "Authorization: Bearer $MENDER_ADMIN_TOKEN" \
  "$MENDER/api/management/v1/deviceconfig/configurations/device/$DEVICE" |
  .venv/bin/python -c 'import json, sys; print(json.dumps(json.load(sys.stdin)["configured"]))' \
    >"$root/config.json"
ROOT="$root" AWS_IOT_SERVICE="" AWS_IOT_ROOT_CA="$EMULATOR_CA_DIR/ca.pem" \
  MENDER_AWS_IOT_CONF=/nonexistent scripts/device/mender-configure-aws-iot "$root/config.json"

EMULATOR_CA_DIR=$EMULATOR_CA_DIR .venv/bin/python tests/emulator/iot_emulator.py crl "$AWS_ENDPOINT_URL"
kill -HUP "$(cat "$STATE/mosquitto.pid")"
sleep 0.5

dir="$root/etc/aws-iot"
connect=(mosquitto_pub -V mqttv5 -q 1 -h "$(cat "$dir/endpoint")" -p "$BROKER_PORT"
  --cafile "$dir/AmazonRootCA1.pem" --cert "$dir/certificate.pem" --key "$dir/private.key"
  -i "$DEVICE" -t "\$aws/things/$DEVICE/shadow/update" -m '{"state":{"reported":{"online":true}}}')
printf '%q ' "${connect[@]}"
echo
if "${connect[@]}"; then
  echo "device $DEVICE connected and published on its own shadow topic"
else
  echo "device $DEVICE was refused (rejected or decommissioned?)"
  exit 1
fi
