#!/usr/bin/env bash
# Starts the release binary (rate limiting off) on a free loopback port with
# a temp data dir and runs the Python client test against it
# (tests/python/test_client.py, which generates its client from proto/).
#
# Usage: .ci/python-client.sh      (run .ci/install-tools.sh first)
# Env:   COMMENTD_BIN  the binary (default target/release/commentd; built with
#                      `cargo build --release` when missing)
#
# The last line is "N passed, M failed"; exits non-zero on any failure.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN=${COMMENTD_BIN:-target/release/commentd}
fail() {
    echo "not ok - $1"
    if [[ -n ${2:-} && -f $2 ]]; then sed 's/^/#   /' "$2"; fi
    echo "0 passed, 1 failed"
    exit 1
}
if [[ ! -x $BIN ]]; then
    echo "# $BIN missing: cargo build --release" >&2
    cargo build --release --locked >&2 || fail "cargo build --release"
fi
python3 -c 'import grpc, grpc_tools.protoc' 2>/dev/null ||
    fail "grpcio and grpcio-tools are installed (run .ci/install-tools.sh)"

work=$(mktemp -d "${TMPDIR:-/tmp}/commentd-pyclient.XXXXXX")
log=$work/server.log
pid=
source .ci/commentd-server.sh
trap 'stop_commentd; rm -rf "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_commentd "$log" --data-dir "$work/data" --rate-limit-burst 0
[[ -n $addr ]] || fail "server starts and listens" "$log"
echo "# commentd $BIN listening on $addr"

python3 -u tests/python/test_client.py "$addr" 2>&1 | tee "$work/test.out"
status=${PIPESTATUS[0]}
if ((status != 0)); then
    echo "# server log (last 20 lines):"
    tail -n 20 "$log" | sed 's/\x1b\[[0-9;]*m//g; s/^/#   /'
    # Repeat the summary so that it stays the last line.
    summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$work/test.out" | tail -n 1)
    echo "${summary:-0 passed, 1 failed}"
fi
exit "$status"
