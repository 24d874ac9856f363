#!/usr/bin/env bash
# Tests scripts/device/mender-configure-aws-iot against the sample
# configurations in samples/, in temporary roots, with a fake systemctl.
#
# Runs the script under dash with each JSON reader (jq, python3, awk), and,
# when busybox is installed, on a busybox-only PATH (no jq, no python3, no
# openssl: the awk reader is chosen by itself), which is what a minimal Yocto
# image has. python3 also checks the client configuration the script writes
# (the harness may need it; the script does not).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
script="$here/../../scripts/device/mender-configure-aws-iot"
samples="$here/samples"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Every run installs this test CA and, unless told otherwise, this thing name.
test_ca="$samples/test-root-ca.pem"
default_thing="mender-test-device"
cn_thing="6560f2fa1e3b4a0001c0ffee"
sample_endpoint=$(cat "$samples/expected/endpoint")
# The harness's own python3 (the real interpreter, not a version manager's
# shim: it runs often).
if ! harness_python=$(python3 -c 'import sys; print(sys.executable)'); then
    echo "the test harness needs python3" >&2
    exit 1
fi
# SHA-256 of Amazon Root CA 1 (AmazonRootCA1.pem as Amazon publishes it).
amazon_root_ca_1_sha256=2c43952ee9e000ff2acc4e2ed0897c0a72ad5fa72c3d934e81741cbd54f05bd1

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
        MENDER_AWS_IOT_CONF="$work/no-such-file" AWS_IOT_ROOT_CA="$test_ca" \
        AWS_IOT_THING_NAME="$default_thing" \
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

# Modes and inodes of what a path resolves to (through the links).
mode_of() {
    stat -L -c %a "$1" 2>/dev/null || echo missing
}

inode_of() {
    stat -L -c %i "$1" 2>/dev/null || echo missing
}

link_of() {
    readlink "$1" 2>/dev/null || echo "not a link"
}

# The release `current` names, or "none".
release_of() {
    local target
    target=$(link_of "$1/current")
    case $target in
        releases/*/*) echo none ;;
        releases/?*) echo "${target#releases/}" ;;
        *) echo none ;;
    esac
}

# expect_layout DIR: current -> releases/<one>, the only release, with the
# modes the AWS IoT Device Client requires, and the stable links.
expect_layout() {
    local dir=$1 file mode releases
    if [ "$(release_of "$dir")" = none ]; then
        fail "current is not a link into releases/: $(link_of "$dir/current")"
        return
    fi
    releases=$(ls -A "$dir/releases")
    [ "$releases" = "$(release_of "$dir")" ] || fail "releases/ holds $(echo "$releases" | wc -l) entries: $releases"
    [ "$(mode_of "$dir/current")" = 700 ] || fail "release directory mode $(mode_of "$dir/current")"
    [ "$(mode_of "$dir")" = 755 ] || fail "$dir mode $(mode_of "$dir")"
    [ "$(mode_of "$dir/releases")" = 755 ] || fail "releases/ mode $(mode_of "$dir/releases")"
    for file in private.key:600 certificate.pem:644 AmazonRootCA1.pem:644 endpoint:644 thing-name:644 \
        aws-iot-device-client.json:640; do
        mode=$(mode_of "$dir/current/${file%:*}")
        [ "$mode" = "${file#*:}" ] || fail "${file%:*} mode $mode, expected ${file#*:}"
    done
    for file in certificate.pem private.key endpoint AmazonRootCA1.pem aws-iot-device-client.json; do
        if [ ! -L "$dir/$file" ] || [ "$(link_of "$dir/$file")" != "current/$file" ]; then
            fail "$file is not a link to current/$file: $(link_of "$dir/$file")"
        fi
    done
    if [ -e "$dir/thing-name" ] || [ -L "$dir/thing-name" ]; then
        fail "thing-name outside the release"
    fi
}

# expect_client_config ROOT DEVDIR THING [PORT]: the AWS IoT Device Client's
# configuration is this JSON, and its files pass the client's own checks
# (the directory part of each path it is given, links followed, and the
# file: modes compared exactly).
expect_client_config() {
    local problems
    problems=$("$harness_python" - "$1" "$2" "$3" "${4:-8883}" "$sample_endpoint" <<'EOF'
import json, os, stat, sys
root, devdir, thing, port, endpoint = sys.argv[1:]
path = root + devdir + "/aws-iot-device-client.json"
try:
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
except (OSError, ValueError) as e:
    print(f"aws-iot-device-client.json: {e}")
    sys.exit(1)
off = {"enabled": False}
expected = {
    "endpoint": endpoint,
    "port": int(port),
    "cert": devdir + "/current/certificate.pem",
    "key": devdir + "/current/private.key",
    "root-ca": devdir + "/current/AmazonRootCA1.pem",
    "thing-name": thing,
    "logging": {"level": "INFO", "type": "STDOUT"},
    "jobs": off,
    "tunneling": off,
    "device-defender": off,
    "fleet-provisioning": off,
    "samples": {"pub-sub": off},
    "config-shadow": off,
    "sample-shadow": off,
}
problems = []
if config != expected:
    problems.append(f"client configuration {config}, expected {expected}")
def mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)
for key, want in (("cert", 0o644), ("key", 0o600), ("root-ca", 0o644)):
    value = config.get(key)
    if not isinstance(value, str):
        continue
    full = root + value
    parent = full[: full.rfind("/") + 1]
    try:
        if mode(parent) != 0o700:
            problems.append(f"{key}: {parent} has mode {mode(parent):o}, the client wants 700")
        if mode(full) != want:
            problems.append(f"{key}: {full} has mode {mode(full):o}, the client wants {want:o}")
    except OSError as e:
        problems.append(f"{key}: {e}")
if mode(path) != 0o640:
    problems.append(f"aws-iot-device-client.json has mode {mode(path):o}")
print("; ".join(problems))
sys.exit(1 if problems else 0)
EOF
    ) || fail "${problems:-the client configuration check failed}"
}

# expect_installed ROOT [DEVDIR [THING [PORT]]]: the sample credentials, as
# a release with the test CA.
expect_installed() {
    local devdir=${2:-/etc/aws-iot} thing=${3:-$default_thing}
    local dir="$1$devdir"
    for file in certificate.pem private.key endpoint; do
        if ! cmp -s "$dir/$file" "$samples/expected/$file"; then
            fail "$file differs from samples/expected/$file"
        fi
    done
    cmp -s "$dir/AmazonRootCA1.pem" "$test_ca" || fail "AmazonRootCA1.pem is not AWS_IOT_ROOT_CA"
    [ "$(cat "$dir/current/thing-name" 2>/dev/null)" = "$thing" ] ||
        fail "thing-name is '$(cat "$dir/current/thing-name" 2>/dev/null)', expected '$thing'"
    [ "$(mode_of "$dir/private.key")" = 600 ] || fail "private.key mode $(mode_of "$dir/private.key")"
    [ "$(mode_of "$dir/certificate.pem")" = 644 ] || fail "certificate.pem mode $(mode_of "$dir/certificate.pem")"
    [ "$(mode_of "$dir/endpoint")" = 644 ] || fail "endpoint mode $(mode_of "$dir/endpoint")"
    expect_layout "$dir"
    expect_client_config "$1" "$devdir" "$thing" "${4:-}"
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

# A PATH with what the script needs from the mode's PATH, but no openssl.
make_path_without_openssl() {
    local dir=$1 cmd found
    mkdir -p "$dir"
    for cmd in awk cat chmod chown cmp date grep jq ln ls mkdir mktemp mv python3 readlink rm sed sync tail; do
        # shellcheck disable=SC2016 # $1 is for that shell
        found=$(env "${mode_env[@]}" "$posix_sh" -c 'command -v "$1"' sh "$cmd") || continue
        if [ "$cmd" = python3 ]; then
            found=$harness_python
        fi
        ln -s "$found" "$dir/$cmd"
    done
}

mode_has_openssl() {
    env "${mode_env[@]}" "$posix_sh" -c 'command -v openssl' >/dev/null
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
    local root inode release release_inode
    root=$(fresh_root)
    run_script "$root" "$samples/full.json"
    inode=$(inode_of "$root/etc/aws-iot/private.key")
    release=$(release_of "$root/etc/aws-iot")
    release_inode=$(inode_of "$root/etc/aws-iot/current")
    run_script "$root" "$samples/full.json"
    expect_status 0
    expect_output "unchanged"
    expect_installed "$root"
    [ "$(inode_of "$root/etc/aws-iot/private.key")" = "$inode" ] || fail "private.key was rewritten"
    [ "$(release_of "$root/etc/aws-iot")" = "$release" ] || fail "current was switched"
    [ "$(inode_of "$root/etc/aws-iot/current")" = "$release_inode" ] || fail "the release was rewritten"
    [ "$(restarts "$root")" = 1 ] || fail "restarted again for an unchanged configuration"
}

case_rotation_replaces_only_what_changed() {
    local root key_inode old
    root=$(fresh_root)
    run_script "$root" "$samples/full.json"
    key_inode=$(inode_of "$root/etc/aws-iot/private.key")
    old=$(release_of "$root/etc/aws-iot")
    run_script "$root" "$samples/rotated.json"
    expect_status 0
    expect_output "installed certificate.pem in"
    grep -q 'Uk9UQVRFRC1URVNULU9OTFktQ0VSVElGSUNBVEUw' "$root/etc/aws-iot/certificate.pem" ||
        fail "the new certificate was not installed"
    [ "$(inode_of "$root/etc/aws-iot/private.key")" = "$key_inode" ] || fail "the unchanged key was rewritten"
    [ "$(restarts "$root")" = 2 ] || fail "not restarted after rotation"
    # A new release, complete, and the only one.
    [ "$(release_of "$root/etc/aws-iot")" != "$old" ] || fail "current still names the old release"
    [ ! -e "$root/etc/aws-iot/releases/$old" ] || fail "the old release was not removed"
    expect_layout "$root/etc/aws-iot"
    cmp -s "$root/etc/aws-iot/current/certificate.pem" "$root/etc/aws-iot/certificate.pem" ||
        fail "certificate.pem does not resolve to the current release"
    cmp -s "$root/etc/aws-iot/private.key" "$samples/expected/private.key" || fail "the key changed"
    expect_client_config "$root" /etc/aws-iot "$default_thing"
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
    [ "$(stat -L -c %u "$root/opt/iot/credentials/private.key" 2>/dev/null)" = "$(id -u)" ] || fail "owner not applied"
    [ "$(stat -L -c %u:%g "$root/opt/iot/credentials/current" 2>/dev/null)" = "$(id -u):$(id -g)" ] ||
        fail "owner not applied to the release directory"
    grep -q '^restart my-client.service$' "$root.systemctl" || fail "my-client.service not restarted"
    expect_installed "$root" /opt/iot/credentials
    [ ! -e "$root/etc/aws-iot" ] || fail "/etc/aws-iot was written too"
}

case_settings_file() {
    local root
    root=$(fresh_root)
    printf '%s\n' 'AWS_IOT_DIR=/srv/iot' 'AWS_IOT_SERVICE=from-file.service' >"$root.conf"
    run_script "$root" "$samples/full.json" MENDER_AWS_IOT_CONF="$root.conf" FAKE_UNITS=from-file.service
    expect_status 0
    [ -f "$root/srv/iot/private.key" ] || fail "AWS_IOT_DIR from the settings file not used"
    expect_installed "$root" /srv/iot
    grep -q '^restart from-file.service$' "$root.systemctl" || fail "AWS_IOT_SERVICE from the settings file not used"
}

case_update_switches_to_a_new_release() {
    local root dir first second cert_inode
    root=$(fresh_root)
    dir="$root/etc/aws-iot"
    run_script "$root" "$samples/full.json"
    first=$(release_of "$dir")
    cert_inode=$(inode_of "$dir/certificate.pem")
    # A leftover of an interrupted run goes with the next update.
    mkdir -p "$dir/releases/00000000T000000Z.1"
    run_script "$root" "$samples/full.json" AWS_IOT_THING_NAME=renamed-thing
    expect_status 0
    expect_output "installed thing-name aws-iot-device-client.json in"
    second=$(release_of "$dir")
    [ "$second" != "$first" ] || fail "current still names the first release"
    expect_installed "$root" /etc/aws-iot renamed-thing
    [ "$(inode_of "$dir/certificate.pem")" = "$cert_inode" ] || fail "the unchanged certificate was rewritten"
    # Straight back, within the same second: a third release, not a clash.
    run_script "$root" "$samples/full.json"
    expect_status 0
    [ "$(release_of "$dir")" != "$second" ] || fail "current still names the second release"
    [ "$(release_of "$dir")" != "$first" ] || fail "current names the removed first release again"
    expect_installed "$root"
    expect_no_staging_left "$root"
    [ "$(restarts "$root")" = 3 ] || fail "restarted $(restarts "$root") times, expected 3"
}

case_upgrades_the_old_layout() {
    local root dir file
    root=$(fresh_root)
    dir="$root/etc/aws-iot"
    # What the previous version of the script wrote, and a root CA shipped
    # in the image next to it.
    mkdir -p "$dir"
    for file in certificate.pem:644 private.key:600 endpoint:644; do
        cp "$samples/expected/${file%:*}" "$dir/${file%:*}"
        chmod "${file#*:}" "$dir/${file%:*}"
    done
    echo "an old root CA" >"$dir/AmazonRootCA1.pem"
    run_script "$root" "$samples/full.json"
    expect_status 0
    expect_output "replacing the file $dir/private.key by a link"
    expect_installed "$root"
    expect_no_staging_left "$root"
    [ "$(restarts "$root")" = 1 ] || fail "not restarted after the upgrade"
    run_script "$root" "$samples/full.json"
    expect_output "unchanged"
    [ "$(restarts "$root")" = 1 ] || fail "restarted again after the upgrade"
}

case_repairs_a_missing_link() {
    local root
    root=$(fresh_root)
    run_script "$root" "$samples/full.json"
    rm "$root/etc/aws-iot/endpoint"
    run_script "$root" "$samples/full.json"
    expect_status 0
    expect_output "linked endpoint to current/"
    expect_installed "$root"
    [ "$(restarts "$root")" = 2 ] || fail "not restarted after repairing a link"
}

case_thing_name_from_the_configuration() {
    local root
    root=$(fresh_root)
    # awsThingName wins over AWS_IOT_THING_NAME (set by run_script).
    run_script "$root" "$samples/with-thing-name.json"
    expect_status 0
    expect_installed "$root" /etc/aws-iot "$cn_thing"
    # An empty awsThingName is no name: the setting applies.
    root=$(fresh_root)
    run_script "$root" "$samples/empty-thing-name.json"
    expect_status 0
    expect_installed "$root"
}

case_thing_name_from_the_certificate() {
    local root
    root=$(fresh_root)
    run_script "$root" "$samples/certificate-with-cn.json" AWS_IOT_THING_NAME=
    if mode_has_openssl; then
        expect_status 0
        cmp -s "$root/etc/aws-iot/certificate.pem" "$samples/expected/certificate-with-cn.pem" ||
            fail "certificate.pem differs from samples/expected/certificate-with-cn.pem"
        [ "$(cat "$root/etc/aws-iot/current/thing-name")" = "$cn_thing" ] || fail "thing-name is not the certificate's CN"
        expect_layout "$root/etc/aws-iot"
        expect_client_config "$root" /etc/aws-iot "$cn_thing"
    else
        expect_status 1
        expect_output "openssl is not installed"
        expect_nothing_installed "$root"
    fi
    # Without openssl on PATH: no thing name.
    root=$(fresh_root)
    run_script "$root" "$samples/certificate-with-cn.json" AWS_IOT_THING_NAME= PATH="$no_openssl_path"
    expect_status 1
    expect_output "no thing name"
    expect_output "openssl is not installed"
    expect_nothing_installed "$root"
    expect_no_staging_left "$root"
}

case_no_thing_name_fails() {
    local root
    # No awsThingName, no setting, and a certificate openssl cannot read.
    root=$(fresh_root)
    run_script "$root" "$samples/full.json" AWS_IOT_THING_NAME=
    expect_status 1
    expect_output "no thing name"
    expect_nothing_installed "$root"
    expect_no_staging_left "$root"
    # Over installed credentials: they stay as they were.
    root=$(fresh_root)
    run_script "$root" "$samples/full.json"
    run_script "$root" "$samples/full.json" AWS_IOT_THING_NAME=
    expect_status 1
    expect_installed "$root"
    [ "$(restarts "$root")" = 1 ] || fail "restarted after failing"
}

case_refuses_invalid_thing_names() {
    local root long ok setting
    long=$(printf 'a%.0s' {1..129})
    ok=$(printf 'Z%.0s' {1..128})
    for setting in "awsThingName=not a thing name!" "awsThingName=42" "AWS_IOT_THING_NAME=has space" \
        "AWS_IOT_THING_NAME=caf$(printf '\303\251')" "AWS_IOT_THING_NAME=$long"; do
        root=$(fresh_root)
        case $setting in
            "awsThingName=42") run_script "$root" "$samples/thing-name-not-a-string.json" ;;
            awsThingName=*) run_script "$root" "$samples/bad-thing-name.json" ;;
            *) run_script "$root" "$samples/full.json" "$setting" ;;
        esac
        expect_status 1
        case $setting in
            "awsThingName=42") expect_output "not a JSON object of strings (awsThingName unreadable)" ;;
            *) expect_output "not a valid AWS IoT thing name" ;;
        esac
        expect_nothing_installed "$root"
        expect_no_staging_left "$root"
    done
    # The longest name allowed, with every kind of character allowed.
    root=$(fresh_root)
    run_script "$root" "$samples/full.json" AWS_IOT_THING_NAME="${ok:0:120}az09:_-"
    expect_status 0
    expect_installed "$root" /etc/aws-iot "${ok:0:120}az09:_-"
    # Over installed credentials: they stay as they were.
    root=$(fresh_root)
    run_script "$root" "$samples/full.json"
    run_script "$root" "$samples/bad-thing-name.json"
    expect_status 1
    expect_installed "$root"
}

case_root_ca() {
    local root setting fresh
    # The default: Amazon Root CA 1, carried by the script.
    root=$(fresh_root)
    run_script "$root" "$samples/full.json" AWS_IOT_ROOT_CA=
    expect_status 0
    [ "$(sha256sum <"$root/etc/aws-iot/AmazonRootCA1.pem" | cut -d' ' -f1)" = "$amazon_root_ca_1_sha256" ] ||
        fail "AmazonRootCA1.pem is not Amazon Root CA 1"
    if [ -f /etc/ssl/certs/Amazon_Root_CA_1.pem ]; then
        cmp -s "$root/etc/aws-iot/AmazonRootCA1.pem" /etc/ssl/certs/Amazon_Root_CA_1.pem ||
            fail "AmazonRootCA1.pem differs from the system's Amazon_Root_CA_1.pem"
    fi
    [ "$(mode_of "$root/etc/aws-iot/AmazonRootCA1.pem")" = 644 ] || fail "AmazonRootCA1.pem mode"
    # Switching to another CA is an update like any other.
    run_script "$root" "$samples/full.json"
    expect_status 0
    expect_output "installed AmazonRootCA1.pem in"
    expect_installed "$root"
    # A bad AWS_IOT_ROOT_CA: nothing changed, or nothing installed.
    for setting in "$samples/not-a-certificate.pem" "$work/no-such-ca.pem" "$samples"; do
        run_script "$root" "$samples/full.json" AWS_IOT_ROOT_CA="$setting"
        expect_status 1
        expect_output "AWS_IOT_ROOT_CA"
        expect_installed "$root"
    done
    fresh=$(fresh_root)
    run_script "$fresh" "$samples/full.json" AWS_IOT_ROOT_CA="$samples/not-a-certificate.pem"
    expect_status 1
    expect_output "AWS_IOT_ROOT_CA ($samples/not-a-certificate.pem) is not a PEM certificate"
    expect_nothing_installed "$fresh"
    expect_no_staging_left "$fresh"
    [ "$(restarts "$root")" = 2 ] || fail "restarted after a bad AWS_IOT_ROOT_CA"
}

case_port() {
    local root port
    root=$(fresh_root)
    run_script "$root" "$samples/full.json" AWS_IOT_PORT=443
    expect_status 0
    expect_installed "$root" /etc/aws-iot "$default_thing" 443
    for port in 0 08883 65536 44x; do
        root=$(fresh_root)
        run_script "$root" "$samples/full.json" AWS_IOT_PORT="$port"
        expect_status 1
        expect_output "AWS_IOT_PORT is not a port number"
        expect_nothing_installed "$root"
    done
}

case_directory_settings() {
    local root setting
    # Trailing slashes do not end up in the client's paths.
    root=$(fresh_root)
    run_script "$root" "$samples/full.json" AWS_IOT_DIR=/etc/aws-iot//
    expect_status 0
    expect_installed "$root"
    for setting in relative/dir / "/with space"; do
        root=$(fresh_root)
        run_script "$root" "$samples/full.json" AWS_IOT_DIR="$setting"
        expect_status 1
        expect_output "AWS_IOT_DIR must be an absolute path"
        [ -z "$(ls -A "$root")" ] || fail "AWS_IOT_DIR=$setting: files were written: $(ls -A "$root")"
    done
}

case_refuses_what_is_in_the_way() {
    local root dir in_the_way
    for in_the_way in current private.key; do
        root=$(fresh_root)
        dir="$root/etc/aws-iot"
        mkdir -p "$dir/$in_the_way"
        run_script "$root" "$samples/full.json"
        expect_status 1
        expect_output "nothing installed"
        [ "$(ls -A "$dir")" = "$in_the_way" ] || fail "files were written next to $in_the_way: $(ls -A "$dir")"
    done
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
    case_update_switches_to_a_new_release
    case_upgrades_the_old_layout
    case_repairs_a_missing_link
    case_thing_name_from_the_configuration
    case_thing_name_from_the_certificate
    case_no_thing_name_fails
    case_refuses_invalid_thing_names
    case_root_ca
    case_port
    case_directory_settings
    case_refuses_what_is_in_the_way
    case_usage_without_argument
)

mode_count=0
run_mode() {
    mode=$1
    mode_count=$((mode_count + 1))
    no_openssl_path="$work/no-openssl.$mode_count"
    make_path_without_openssl "$no_openssl_path"
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
        if [ "$reader" = python3 ]; then
            # The script finds the real interpreter first, not a shim.
            mode_env+=(PATH="$(dirname "$harness_python"):$PATH")
        fi
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
