#!/usr/bin/env bash
# Runs every cargo-fuzz target (or the ones named) for SECONDS each; exits 1 if any of them
# finds a crash, a panic, a timeout or runaway memory. Needs the nightly toolchain; installs
# cargo-fuzz if it is missing.
#
#   fuzz/run.sh SECONDS [TARGET...]
#
# The committed seeds in fuzz/corpus/TARGET are read, never written: what the fuzzer finds
# goes to fuzz/target/corpus/TARGET (kept between runs, ignored by git), crashes to
# fuzz/artifacts/TARGET/. Reproduce one with `cargo +nightly fuzz run TARGET FILE`.
#
# FUZZ_SANITIZER picks the sanitizer (default `none`: alertcore forbids unsafe code, and
# without ASan a target runs about twice as many inputs in the same time; `address` for
# the unsafe code of dependencies).
set -euo pipefail

secs=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
cd "$(dirname "$0")"
sanitizer=${FUZZ_SANITIZER:-none}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: installing cargo-fuzz" >&2
    start=$SECONDS
    cargo install cargo-fuzz --locked
    echo "fuzz/run.sh: cargo-fuzz installed in $((SECONDS - start)) s" >&2
fi

if (($# > 0)); then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

start=$SECONDS
cargo +nightly fuzz build --sanitizer "$sanitizer"
echo "fuzz/run.sh: targets built in $((SECONDS - start)) s" >&2

failed=()
for target in "${targets[@]}"; do
    echo "fuzz/run.sh: $target for ${secs} s" >&2
    mkdir -p "target/corpus/$target" "corpus/$target"
    if ! cargo +nightly fuzz run --sanitizer "$sanitizer" "$target" \
        "target/corpus/$target" "corpus/$target" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
        -print_final_stats=1; then
        failed+=("$target")
    fi
done

if ((${#failed[@]} > 0)); then
    echo "fuzz/run.sh: FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz/run.sh: ${targets[*]}: no crash in ${secs} s each" >&2
