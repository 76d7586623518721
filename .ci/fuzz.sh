#!/usr/bin/env bash
# Short fuzzing of every cargo-fuzz target in fuzz/ (libFuzzer, AddressSanitizer,
# debug assertions and overflow checks on). Exits non-zero when a target
# crashes (a panic, a sanitizer report, an input slower than FUZZ_TIMEOUT
# seconds or an out-of-memory), naming the input libFuzzer saved under
# fuzz/artifacts/<target>/; copy it into fuzz/regressions/<target>/ so that
# `cargo test` replays it (src/fuzzing.rs).
#
# Installs cargo-fuzz (crates.io, pinned) if missing. The stable toolchain
# runs it with RUSTC_BOOTSTRAP=1 (the sanitizer flags are nightly-only).
#
# Overridable: FUZZ_SECONDS (per target, default 20), FUZZ_TARGETS (default:
# all), FUZZ_TIMEOUT (seconds per input, default 30), CARGO_FUZZ_VERSION.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-20}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-30}
CARGO_FUZZ_VERSION=${CARGO_FUZZ_VERSION:-0.13.2}
export RUSTC_BOOTSTRAP=1

if [[ $(cargo fuzz --version 2>/dev/null) != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

read -r -a targets <<< "${FUZZ_TARGETS:-$(cd fuzz && cargo fuzz list | tr '\n' ' ')}"

cd fuzz
# One build for all targets (`cargo fuzz run` then finds them up to date).
cargo fuzz build --debug-assertions

failed=()
for target in "${targets[@]}"; do
    printf '\n=== fuzz %s for %ss ===\n' "$target" "$FUZZ_SECONDS"
    mkdir -p "corpus/$target"
    max_len=()
    [[ $target == screening ]] && max_len=(-max_len=8192)
    # New inputs go to corpus/<target> (gitignored); seeds/<target> is read only.
    if ! cargo fuzz run --debug-assertions "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$FUZZ_SECONDS" -timeout="$FUZZ_TIMEOUT" -rss_limit_mb=2048 \
        -print_final_stats=1 "${max_len[@]}"; then
        failed+=("$target")
    fi
done

if ((${#failed[@]})); then
    printf '\nfuzzing found crashes in: %s (inputs in fuzz/artifacts/)\n' "${failed[*]}" >&2
    exit 1
fi
printf '\nfuzzing: %s targets, %ss each, no crash\n' "${#targets[@]}" "$FUZZ_SECONDS"
