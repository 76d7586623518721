#!/usr/bin/env bash
# The news site's comment widget in a real browser: builds the widget
# (deploy/news-site/widget -> deploy/news-site/public/comments.js), serves a
# copy of deploy/news-site/public with python's static server, runs commentd
# directly with CORS for that origin, and drives two headless Chromium pages
# with Playwright (deploy/news-site/widget/test/browser.ts): live comments
# across pages, replies, rejection, a commentd restart (resume) and removal.
#
# Prints "ok - ..." / "not ok - ..." per check and "N passed, M failed" at the
# end; exits non-zero on any failure. The screenshot goes to $ARTIFACT_DIR
# (default /tmp/commentd-browser).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
widget=$repo/deploy/news-site/widget
export ARTIFACT_DIR=${ARTIFACT_DIR:-/tmp/commentd-browser}
mkdir -p "$ARTIFACT_DIR"

passed=0
failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1"; failed=$((failed + 1)); [[ -n ${2:-} ]] && printf '%s\n' "$2" | tail -n 20 | sed 's/^/#   /'; }
finish() { echo "$passed passed, $failed failed"; ((failed == 0)); exit $?; }

work=$(mktemp -d)
pids=()
cleanup() {
    [[ -f $work/commentd2.pid ]] && pids+=("$(cat "$work/commentd2.pid")")
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
rm -f "$ARTIFACT_DIR/commentd-restarted.log"

# --- tools -------------------------------------------------------------------
if [[ ! -x /usr/bin/chromium ]]; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2 ||
        { not_ok "install chromium"; finish; }
fi
command -v npm >/dev/null || {
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >&2 ||
        { not_ok "install nodejs and npm"; finish; }
}
if out=$(cd "$widget" && npm ci --no-audit --no-fund 2>&1); then ok "npm ci (widget)"; else not_ok "npm ci (widget)" "$out"; finish; fi
if out=$(cd "$widget" && npm run build 2>&1); then ok "build the widget (buf generate, tsc, esbuild)"; else not_ok "build the widget" "$out"; finish; fi
if out=$(cd "$widget" && npx esbuild test/browser.ts --bundle --platform=node --format=esm \
    --packages=external --outfile=gen/browser-test.mjs 2>&1); then :; else not_ok "bundle the browser test" "$out"; finish; fi
if [[ ! -x target/release/commentd ]]; then
    cargo build --release >&2 || { not_ok "cargo build --release"; finish; }
fi

# --- servers -----------------------------------------------------------------
# wait_for FILE REGEX: the first match of REGEX's group in FILE, within 20 s.
wait_for() {
    local line
    for _ in $(seq 200); do
        line=$(grep -oE "$2" "$1" 2>/dev/null | head -n 1) && [[ -n $line ]] && { echo "$line"; return 0; }
        sleep 0.1
    done
    return 1
}

cp -r deploy/news-site/public "$work/site"
(cd "$work/site" && exec python3 -u -m http.server --bind 127.0.0.1 0) >"$work/http.log" 2>&1 &
pids+=($!)
page_port=$(wait_for "$work/http.log" 'port [0-9]+' | grep -oE '[0-9]+') ||
    { not_ok "static server starts" "$(cat "$work/http.log")"; finish; }
origin="http://127.0.0.1:$page_port"

token=browser-test-$RANDOM$RANDOM
echo "browser-test:$token" >"$work/moderators"
target/release/commentd --listen 127.0.0.1:0 --data-dir "$work/data" --rate-limit-burst 0 \
    --cors-allow-origin "$origin" --moderator-tokens-file "$work/moderators" >"$work/commentd.log" 2>&1 &
commentd_pid=$!
pids+=("$commentd_pid")
api=$(wait_for "$work/commentd.log" 'commentd listening on [0-9.:]+' | awk '{print $4}') ||
    { not_ok "commentd starts" "$(cat "$work/commentd.log")"; finish; }
ok "servers up: page $origin, commentd $api"

# Point the served copy of the page at commentd (cross-origin, so CORS is used).
sed -i "s#data-api-base=\"[^\"]*\"#data-api-base=\"http://$api\"#" "$work/site/index.html"

# --- browser -----------------------------------------------------------------
export PAGE_URL="$origin/index.html" COMMENTD_URL="http://$api" MODERATOR_TOKEN=$token \
    COMMENTD_PID=$commentd_pid COMMENTD_PID_FILE=$work/commentd2.pid
COMMENTD_ARGS=$(python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$repo/target/release/commentd" \
    --listen "$api" --data-dir "$work/data" --rate-limit-burst 0 --cors-allow-origin "$origin" \
    --moderator-tokens-file "$work/moderators")
export COMMENTD_ARGS
(cd "$widget" && CHROMIUM=/usr/bin/chromium node gen/browser-test.mjs) >"$work/browser.log" 2>&1
node_rc=$?
before=$((passed + failed))
while IFS= read -r line; do
    echo "$line"
    case $line in
        "ok - "*) passed=$((passed + 1)) ;;
        "not ok - "*) failed=$((failed + 1)) ;;
    esac
done <"$work/browser.log"
if ((passed + failed == before)) || { ((node_rc != 0)) && ((failed == 0)); }; then
    not_ok "the browser test ran to the end (exit code $node_rc)"
fi
if ((failed > 0)); then
    echo "# commentd log (last lines):"
    tail -n 20 "$work/commentd.log" | sed 's/^/#   /'
    [[ -f $ARTIFACT_DIR/commentd-restarted.log ]] && tail -n 20 "$ARTIFACT_DIR/commentd-restarted.log" | sed 's/^/#   /'
fi
finish
