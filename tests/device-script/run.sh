#!/usr/bin/env bash
# Tests scripts/device/mender-configure-aws-iot against the sample
# configurations in samples/, in temporary roots, with a fake systemctl.
#
# Runs the script under dash with each JSON reader (jq, python3, awk), and,
# when busybox is installed, on a busybox-only PATH (no jq, no python3: the
# awk reader is chosen by itself), which is what a minimal Yocto image has.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
script="$here/../../scripts/device/mender-configure-aws-iot"
samples="$here/samples"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
current=""

fail() {
    echo "FAIL [$current] $*" >&2
    failed=$((failed + 1))
}

# A systemctl that records its calls; `cat` fails for units not listed in
# $FAKE_UNITS; `restart` fails when $FAKE_RESTART_FAILS is set.
cat >"$work/systemctl" <<'EOF'
#!/bin/sh
echo "$*" >>"$FAKE_SYSTEMCTL_LOG"
case $1 in
    cat) case " $FAKE_UNITS " in *" $2 "*) exit 0 ;; *) exit 1 ;; esac ;;
    restart) [ -z "${FAKE_RESTART_FAILS:-}" ] ;;
    *) exit 0 ;;
esac
EOF
chmod +x "$work/systemctl"

# run_script ROOT CONFIG [VAR=VALUE...]: runs the script as mender-configure
# would; sets $status and $output (stderr).
run_script() {
    local root=$1 config=$2
    shift 2
    status=0
    output=$(env ROOT="$root" SYSTEMCTL="$work/systemctl" FAKE_SYSTEMCTL_LOG="$root.systemctl" \
        MENDER_AWS_IOT_CONF="$work/no-such-file" \
        FAKE_UNITS="aws-iot-device-client.service" "${mode_env[@]}" "$@" \
        "${shell[@]}" "$script" "$config" 2>&1 >/dev/null) || status=$?
}

restarts() {
    local log="$1.systemctl"
    if [ -f "$log" ]; then grep -c '^restart ' "$log" || true; else echo 0; fi
}

expect_status() {
    [ "$status" -eq "$1" ] || fail "exit status $status, expected $1; output: $output"
}

expect_output() {
    case $output in
        *"$1"*) ;;
        *) fail "output lacks '$1': $output" ;;
    esac
}

mode_of() {
    stat -c %a "$1" 2>/dev/null || echo missing
}

inode_of() {
    stat -c %i "$1" 2>/dev/null || echo missing
}

expect_installed() {
    local dir="$1/etc/aws-iot"
    for file in certificate.pem private.key endpoint; do
        if ! cmp -s "$dir/$file" "$samples/expected/$file"; then
            fail "$file differs from samples/expected/$file"
        fi
    done
    [ "$(mode_of "$dir/private.key")" = 600 ] || fail "private.key mode $(mode_of "$dir/private.key")"
    [ "$(mode_of "$dir/certificate.pem")" = 644 ] || fail "certificate.pem mode $(mode_of "$dir/certificate.pem")"
    [ "$(mode_of "$dir/endpoint")" = 644 ] || fail "endpoint mode $(mode_of "$dir/endpoint")"
}

expect_nothing_installed() {
    local dir="$1/etc/aws-iot"
    if [ -d "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
        fail "files were written: $(ls -A "$dir")"
    fi
}

expect_no_staging_left() {
    if compgen -G "$1/etc/aws-iot/.staging.*" >/dev/null; then
        fail "a staging directory was left behind"
    fi
}

fresh_root() {
    local root
    root=$(mktemp -d "$work/root.XXXXXX")
    echo "$root"
}

run_case() {
    current="$mode: $1"
    local before=$failed
    "$2"
    if [ "$failed" -eq "$before" ]; then
        passed=$((passed + 1))
    fi
}

# ---------------------------------------------------------------- the cases

case_installs_credentials() {
    local root
    root=$(fresh_root)
    run_script "$root" "$samples/full.json"
    expect_status 0
    expect_installed "$root"
    expect_no_staging_left "$root"
    [ "$(restarts "$root")" = 1 ] || fail "restarted $(restarts "$root") times, expected 1"
    expect_output "restarted aws-iot-device-client.service"
}

case_unchanged_is_nothing_to_do() {
    local root inode
    root=$(fresh_root)
    run_script "$root" "$samples/full.json"
    inode=$(inode_of "$root/etc/aws-iot/private.key")
    run_script "$root" "$samples/full.json"
    expect_status 0
    expect_output "unchanged"
    expect_installed "$root"
    [ "$(inode_of "$root/etc/aws-iot/private.key")" = "$inode" ] || fail "private.key was rewritten"
    [ "$(restarts "$root")" = 1 ] || fail "restarted again for an unchanged configuration"
}

case_rotation_replaces_only_what_changed() {
    local root key_inode
    root=$(fresh_root)
    run_script "$root" "$samples/full.json"
    key_inode=$(inode_of "$root/etc/aws-iot/private.key")
    run_script "$root" "$samples/rotated.json"
    expect_status 0
    expect_output "installed certificate.pem in"
    grep -q 'Uk9UQVRFRC1URVNULU9OTFktQ0VSVElGSUNBVEUw' "$root/etc/aws-iot/certificate.pem" ||
        fail "the new certificate was not installed"
    [ "$(inode_of "$root/etc/aws-iot/private.key")" = "$key_inode" ] || fail "the unchanged key was rewritten"
    [ "$(restarts "$root")" = 2 ] || fail "not restarted after rotation"
}

case_no_aws_keys_is_nothing_to_do() {
    local root sample
    for sample in none.json empty-object.json; do
        root=$(fresh_root)
        run_script "$root" "$samples/$sample"
        expect_status 0
        expect_output "nothing to do"
        expect_nothing_installed "$root"
        [ "$(restarts "$root")" = 0 ] || fail "restarted without credentials ($sample)"
    done
}

case_missing_configuration_file_is_nothing_to_do() {
    local root
    root=$(fresh_root)
    run_script "$root" "$work/does-not-exist.json"
    expect_status 0
    expect_nothing_installed "$root"
}

case_refuses_unusable_configurations() {
    local root sample expected
    for sample in partial malformed array not-a-string bad-endpoint bad-certificate trailing-garbage; do
        case $sample in
            partial) expected="but not awsPrivateKey" ;;
            bad-endpoint) expected="not a host name" ;;
            bad-certificate) expected="not a PEM certificate" ;;
            *) expected="not a JSON object of strings" ;;
        esac
        # Into a fresh root: nothing appears.
        root=$(fresh_root)
        run_script "$root" "$samples/$sample.json"
        expect_status 1
        expect_output "$expected"
        expect_nothing_installed "$root"
        expect_no_staging_left "$root"
        # Over installed credentials: they stay as they were.
        root=$(fresh_root)
        run_script "$root" "$samples/full.json"
        run_script "$root" "$samples/$sample.json"
        expect_status 1
        expect_installed "$root"
        expect_no_staging_left "$root"
        [ "$(restarts "$root")" = 1 ] || fail "restarted after refusing $sample"
    done
}

case_reads_crlf_files() {
    local root
    root=$(fresh_root)
    sed 's/$/\r/' "$samples/full.json" >"$root.json"
    run_script "$root" "$root.json"
    expect_status 0
    expect_installed "$root"
}

case_absent_unit_is_not_restarted() {
    local root
    root=$(fresh_root)
    run_script "$root" "$samples/full.json" FAKE_UNITS=""
    expect_status 0
    expect_installed "$root"
    expect_output "is not installed; not restarted"
    [ "$(restarts "$root")" = 0 ] || fail "restarted an absent unit"
}

case_no_unit_configured() {
    local root
    root=$(fresh_root)
    run_script "$root" "$samples/full.json" AWS_IOT_SERVICE=
    expect_status 0
    expect_installed "$root"
    [ "$(restarts "$root")" = 0 ] || fail "restarted with AWS_IOT_SERVICE empty"
}

case_root_without_systemctl_restarts_nothing() {
    local root
    root=$(fresh_root)
    run_script "$root" "$samples/full.json" SYSTEMCTL=
    expect_status 0
    expect_installed "$root"
    expect_output "ROOT is set"
}

case_failed_restart_fails() {
    local root
    root=$(fresh_root)
    run_script "$root" "$samples/full.json" FAKE_RESTART_FAILS=1
    expect_status 1
    expect_output "could not restart"
}

case_other_directory_and_owner() {
    local root
    root=$(fresh_root)
    run_script "$root" "$samples/full.json" AWS_IOT_DIR=/opt/iot/credentials \
        AWS_IOT_OWNER="$(id -u):$(id -g)" AWS_IOT_SERVICE=my-client.service FAKE_UNITS=my-client.service
    expect_status 0
    [ -f "$root/opt/iot/credentials/private.key" ] || fail "not installed into AWS_IOT_DIR"
    [ "$(stat -c %u "$root/opt/iot/credentials/private.key" 2>/dev/null)" = "$(id -u)" ] || fail "owner not applied"
    grep -q '^restart my-client.service$' "$root.systemctl" || fail "my-client.service not restarted"
}

case_settings_file() {
    local root
    root=$(fresh_root)
    printf '%s\n' 'AWS_IOT_DIR=/srv/iot' 'AWS_IOT_SERVICE=from-file.service' >"$root.conf"
    run_script "$root" "$samples/full.json" MENDER_AWS_IOT_CONF="$root.conf" FAKE_UNITS=from-file.service
    expect_status 0
    [ -f "$root/srv/iot/private.key" ] || fail "AWS_IOT_DIR from the settings file not used"
    grep -q '^restart from-file.service$' "$root.systemctl" || fail "AWS_IOT_SERVICE from the settings file not used"
}

case_usage_without_argument() {
    status=0
    output=$("${shell[@]}" "$script" 2>&1) || status=$?
    expect_status 1
    expect_output "usage"
}

cases=(
    case_installs_credentials
    case_unchanged_is_nothing_to_do
    case_rotation_replaces_only_what_changed
    case_no_aws_keys_is_nothing_to_do
    case_missing_configuration_file_is_nothing_to_do
    case_refuses_unusable_configurations
    case_reads_crlf_files
    case_absent_unit_is_not_restarted
    case_no_unit_configured
    case_root_without_systemctl_restarts_nothing
    case_failed_restart_fails
    case_other_directory_and_owner
    case_settings_file
    case_usage_without_argument
)

run_mode() {
    mode=$1
    for case_name in "${cases[@]}"; do
        run_case "$case_name" "$case_name"
    done
}

# ---------------------------------------------------------------- the modes

posix_sh=$(command -v dash || command -v sh)
shell=("$posix_sh")
for reader in jq python3 awk; do
    if command -v "$reader" >/dev/null; then
        mode_env=(MENDER_AWS_IOT_JSON="$reader")
        run_mode "$(basename "$posix_sh") + $reader"
    else
        echo "skipped: $reader is not installed" >&2
    fi
done

if command -v busybox >/dev/null; then
    # Only busybox's applets on PATH: sh, awk, grep, mktemp, … and no jq or python3.
    mkdir -p "$work/busybox"
    busybox --install -s "$work/busybox"
    ln -s "$work/systemctl" "$work/busybox/systemctl"
    shell=("$work/busybox/sh")
    mode_env=(PATH="$work/busybox")
    run_mode "busybox only"
else
    echo "skipped: busybox is not installed (apt-get install busybox)" >&2
fi

echo "device script: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
