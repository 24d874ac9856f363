#!/usr/bin/env bash
# Builds every Lambda function (each crate under functions/) with cargo-lambda
# in the release profile, for arm64 (what template.yaml deploys) and x86_64,
# then prints each bootstrap's size and its zipped size as a Markdown table.
#
# Artifacts: target/lambda/<arch>/<function>/bootstrap (+ bootstrap.zip).
# Needs cargo-lambda and zig on PATH (`make package` installs both into .venv).
set -euo pipefail
cd "$(dirname "$0")/.."

architectures=(arm64 x86_64)
declare -A rust_target=([arm64]=aarch64-unknown-linux-gnu [x86_64]=x86_64-unknown-linux-gnu)
declare -A cargo_lambda_flag=([arm64]=--arm64 [x86_64]=--x86-64)

functions=()
for manifest in functions/*/Cargo.toml; do
    functions+=("$(basename "$(dirname "$manifest")")")
done
if [ ${#functions[@]} -eq 0 ]; then
    echo "no functions under functions/" >&2
    exit 1
fi

# cargo-lambda cross-compiles through zig, but needs the Rust standard
# library of each target.
if command -v rustup >/dev/null; then
    installed=$(rustup target list --installed)
    for arch in "${architectures[@]}"; do
        target=${rust_target[$arch]}
        grep -qx "$target" <<<"$installed" || rustup target add "$target"
    done
fi

packages=()
for function in "${functions[@]}"; do
    packages+=(--package "$function")
done

for arch in "${architectures[@]}"; do
    echo "== building ${#functions[@]} functions for $arch" >&2
    start=$SECONDS
    cargo lambda build --release "${cargo_lambda_flag[$arch]}" \
        --lambda-dir "target/lambda/$arch" "${packages[@]}"
    echo "== $arch built in $((SECONDS - start)) s" >&2
done

# A zip as Lambda receives it (deflate), to compare with its 50 MB limit.
zip_size() {
    python3 - "$1" <<'EOF'
import os, sys, zipfile
binary = sys.argv[1]
archive = os.path.join(os.path.dirname(binary), "bootstrap.zip")
with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    info = zipfile.ZipInfo("bootstrap")
    info.external_attr = 0o755 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    with open(binary, "rb") as f:
        z.writestr(info, f.read())
print(os.path.getsize(archive))
EOF
}

mib() {
    awk -v bytes="$1" 'BEGIN { printf "%.2f MiB", bytes / 1048576 }'
}

echo
echo "| function | arch | bootstrap | zipped |"
echo "| --- | --- | ---: | ---: |"
for function in "${functions[@]}"; do
    for arch in "${architectures[@]}"; do
        binary="target/lambda/$arch/$function/bootstrap"
        size=$(stat -c %s "$binary")
        zipped=$(zip_size "$binary")
        echo "| $function | $arch | $(mib "$size") | $(mib "$zipped") |"
    done
done
