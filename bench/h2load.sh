#!/usr/bin/env bash
# h2load benchmark of CommentService (SubmitComment, CheckComment, ListComments)
# against target/release/commentd (build it first: cargo build --release).
#
#   bench/h2load.sh                          # 3 runs of 10 s per RPC and load
#   RUNS=5 DURATION=20 CONFIGS="4x1 4x16 1x1" bench/h2load.sh
#
#   COMMENTD_BIN=/other/build/commentd bench/h2load.sh
#
# CONFIGS are connections x streams per connection (h2load -c x -m).
# Prints one table row per RPC and load: medians over RUNS of req/s and of
# mean latency, failed or non-2xx requests over all runs, for SubmitComment
# the bytes the server wrote to disk per stored comment (median), and the
# largest share of the CPUs other processes took during a run (keep it ~0);
# then, per load, SubmitComment's req/s over CheckComment's in each run (the
# RPCs take turns within a run) and their median. Per-run figures go to
# stderr.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${COMMENTD_BIN:-$ROOT/target/release/commentd} # another build: COMMENTD_BIN=path
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
CONFIGS=${CONFIGS:-"4x1 4x16"}
SEED=25 # comments on the ListComments article (page size 20)

[[ -x $BIN ]] || { echo "error: $BIN not found: run 'cargo build --release' in $ROOT" >&2; exit 1; }
if ! command -v h2load >/dev/null; then
  apt-get install -y nghttp2-client >/dev/null || { apt-get update >/dev/null && apt-get install -y nghttp2-client >/dev/null; }
fi
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "error: $tool is required" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/commentd-h2load.XXXXXX")
PID=
cleanup() {
  if [[ -n $PID ]]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
[[ $(stat -f -c %T "$WORK") != tmpfs ]] || echo "warning: $WORK is on tmpfs: bytes written will read ~0" >&2

# Protobuf by hand: request bodies (gRPC frames) and checks of the replies.
cat >"$WORK/pb.py" <<'EOF'
import struct, sys

TEXT = ("The council's decision to delay the bus lane until after the spring "
        "consultation makes sense to me. Residents on Hill Road raised fair points "
        "about deliveries, and a weekday trial would show whether queues really get "
        "worse before the city commits the full budget.")  # 263 chars, approved

def varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)

def field(num, val):  # int: varint (wire type 0); str: length-delimited (2)
    if isinstance(val, int):
        return varint(num << 3) + varint(val)
    data = val.encode()
    return varint(num << 3 | 2) + varint(len(data)) + data

def frame(*fields):  # gRPC frame: not compressed, big-endian length, message
    msg = b"".join(fields)
    return b"\0" + struct.pack(">I", len(msg)) + msg

def parse(buf):  # {field number: [values]}; length-delimited values as bytes
    out, i = {}, 0
    def read_varint():
        nonlocal i
        n = shift = 0
        while True:
            b = buf[i]; i += 1
            n |= (b & 0x7F) << shift; shift += 7
            if b < 0x80:
                return n
    while i < len(buf):
        key = read_varint()
        if key & 7 == 0:
            val = read_varint()
        elif key & 7 == 2:
            size = read_varint(); val = buf[i:i + size]; i += size
        else:
            raise ValueError(f"unexpected wire type {key & 7}")
        out.setdefault(key >> 3, []).append(val)
    return out

def decision(resp):  # Verdict (field 1) -> decision (field 1); 1 = APPROVED
    return parse(parse(resp)[1][0]).get(1, [0])[0]

cmd, arg = sys.argv[1], sys.argv[2]
if cmd == "bodies":  # SubmitCommentRequest: article 1, author 2, text 3, client 5
    def submit(article, client):
        return frame(field(1, article), field(2, "Ana Ribeiro"), field(3, TEXT), field(5, client))
    bodies = {
        "submit": submit("news/2026/bench-submit", "bench-reader"),
        "seed": submit("news/2026/bench-list", "bench-seeder"),
        "check": frame(field(1, TEXT), field(2, "Ana Ribeiro")),        # CheckCommentRequest
        "list": frame(field(1, "news/2026/bench-list"), field(2, 20)),  # ListCommentsRequest
    }
    for name, body in bodies.items():
        open(f"{arg}/{name}.bin", "wb").write(body)
    sys.exit(0)
resp = open(arg, "rb").read()[5:]
if cmd == "submit":  # approved; print the comment's id (Comment field 1)
    assert decision(resp) == 1, f"SubmitComment decision {decision(resp)}, not APPROVED"
    print(parse(parse(resp)[2][0])[1][0].decode())
elif cmd == "check":
    assert decision(resp) == 1, f"CheckComment decision {decision(resp)}, not APPROVED"
elif cmd == "list":
    n = len(parse(resp).get(1, []))
    assert n == 20, f"ListComments returned {n} comments, not 20"
EOF
python3 "$WORK/pb.py" bodies "$WORK"

# Server: ephemeral loopback port, fresh data, rate limit and duplicate window
# off. Its log goes through cat, so the log file's writes are not charged to
# the server's write_bytes.
: >"$WORK/server.log"
"$BIN" --listen 127.0.0.1:0 --data-dir "$WORK/data" --log-format text \
  --rate-limit-burst 0 --duplicate-window-secs 0 --peer-rate-limit-per-sec 0 --check-rate-limit-per-sec 0 \
  > >(cat >>"$WORK/server.log") 2>&1 &
PID=$!
ADDR=
for _ in $(seq 100); do
  ADDR=$(sed -n 's/.*commentd listening on \([0-9.]*:[0-9]*\).*/\1/p' "$WORK/server.log")
  [[ -z $ADDR ]] || break
  kill -0 "$PID" 2>/dev/null || { echo "error: commentd exited:" >&2; cat "$WORK/server.log" >&2; exit 1; }
  sleep 0.1
done
[[ -n $ADDR ]] || { echo "error: commentd did not start listening" >&2; exit 1; }
URL=http://$ADDR/comments.v1.CommentService
echo "$BIN (built $(date -r "$BIN" '+%F %T'); HEAD $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')) on $ADDR, pid $PID; $(nproc) cores" >&2

H2=(h2load -H 'content-type: application/grpc' -H 'te: trailers')

# call METHOD BODY: one call outside the timing; fails unless grpc-status is 0.
call() {
  curl -sS --http2-prior-knowledge -H 'content-type: application/grpc' -H 'te: trailers' \
    --data-binary @"$WORK/$2.bin" -D "$WORK/headers" -o "$WORK/resp" "$URL/$1"
  grep -qi '^grpc-status: 0' "$WORK/headers" || { echo "error: $1 failed:" >&2; cat "$WORK/headers" >&2; exit 1; }
}

# Seed the ListComments article, then check each RPC answers as intended.
"${H2[@]}" -n "$SEED" -c1 -m1 -d "$WORK/seed.bin" "$URL/SubmitComment" | grep -q "^status codes: $SEED 2xx" \
  || { echo "error: seeding $SEED comments failed" >&2; exit 1; }
call ListComments list && python3 "$WORK/pb.py" list "$WORK/resp"
call CheckComment check && python3 "$WORK/pb.py" check "$WORK/resp"
call SubmitComment submit && python3 "$WORK/pb.py" submit "$WORK/resp" >/dev/null
echo "checked: grpc-status 0, SubmitComment and CheckComment APPROVED, ListComments 20 of $SEED" >&2

write_bytes() { awk '/^write_bytes:/ {print $2}' "/proc/$PID/io"; }
# CPU seconds of the whole machine (user, system, steal), of the server and of
# this shell's finished children (h2load): the rest is other processes
# competing for the cores. `times` must run in this shell, not a subshell.
HZ=$(getconf CLK_TCK)
cpu_mark() { # cpu_mark FILE: wall clock, machine, server, children
  times >"$WORK/times"
  { date +%s.%N
    awk -v hz="$HZ" '/^cpu / {print ($2 + $3 + $4 + $9) / hz}' /proc/stat
    awk -v hz="$HZ" '{print ($14 + $15) / hz}' "/proc/$PID/stat"
    awk 'NR == 2 {for (i = 1; i <= 2; i++) {split($i, t, "m"); s += t[1] * 60 + t[2]}; print s}' "$WORK/times"
  } | paste -sd' ' >"$WORK/$1"
}
others_pct() { # others' share of all cores between two marks, in %
  awk -v n="$(nproc)" 'NR == 1 {split($0, a)} NR == 2 {split($0, b)} END {
    o = (b[2] - a[2]) - (b[3] - a[3]) - (b[4] - a[4])
    printf "%.0f", 100 * (o > 0 ? o : 0) / ((b[1] - a[1]) * n)}' "$WORK/$1" "$WORK/$2"
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

RPCS="SubmitComment:submit CheckComment:check ListComments:list"
TOTAL_OK=0 BUSIEST=0
# Per "RPC config": space-separated per-run figures, and totals.
declare -A RPS LAT PER BAD OTHERS RATIOS
# Runs are interleaved (each run times every RPC in turn), so that a drift
# in the machine's speed falls on all of them alike, and SubmitComment is
# compared with the CheckComment run right after it.
for cfg in $CONFIGS; do
  c=${cfg%x*} m=${cfg#*x}
  for run in $(seq "$RUNS"); do
    for rpc in $RPCS; do
      method=${rpc%:*} body=${rpc#*:} k="$method $cfg"
      before=$(write_bytes); cpu_mark mark0
      out=$("${H2[@]}" -c "$c" -m "$m" -D "$DURATION" -d "$WORK/$body.bin" "$URL/$method")
      after=$(write_bytes); cpu_mark mark1; o=$(others_pct mark0 mark1)
      ((o <= ${OTHERS[$k]:-0})) || OTHERS[$k]=$o
      ((o <= BUSIEST)) || BUSIEST=$o
      # finished in 10.00s, 123.40 req/s, ... / requests: ... N failed, ... /
      # status codes: N 2xx, N 3xx, N 4xx, N 5xx / time for request: min max mean ...
      read -r r l f ok <<<"$(awk '
        /^finished in/        { rps = $4 }
        /^requests:/          { failed = $10 }
        /^status codes:/      { ok = $3; non2xx = $5 + $7 + $9 }
        /^time for request:/  { mean = $6; ms = mean + 0
                                if (mean ~ /us$/) ms /= 1000; else if (mean !~ /ms$/) ms *= 1000 }
        END { print rps, ms, failed + non2xx, ok }' <<<"$out")"
      RPS[$k]+=" $r" LAT[$k]+=" $l" BAD[$k]=$((${BAD[$k]:-0} + f))
      if [[ $method == SubmitComment ]]; then
        TOTAL_OK=$((TOTAL_OK + ok))
        PER[$k]+=" $(((after - before) / (ok > 0 ? ok : 1)))"
        submitted=$r
      elif [[ $method == CheckComment && -n ${submitted:-} ]]; then
        RATIOS[$cfg]+=" $(awk -v s="$submitted" -v c="$r" 'BEGIN {printf "%.3f", (c > 0 ? s / c : 0)}')"
      fi
      echo "  $method ${c}x$m run $run: $r req/s, mean $l ms, $f failed/non-2xx, $ok 2xx, $((after - before)) bytes written, others' CPU $o%" >&2
    done
    submitted=
  done
done

printf '%-14s %-7s %10s %14s %15s %14s %14s\n' RPC "c x m" "req/s" "mean latency" "non-2xx/failed" "bytes/comment" "others' CPU"
for rpc in $RPCS; do
  method=${rpc%:*}
  for cfg in $CONFIGS; do
    k="$method $cfg"
    # shellcheck disable=SC2086 # word splitting of the per-run lists is meant
    printf '%-14s %-7s %10.0f %11.2f ms %15d %14s %13s%%\n' "$method" "$cfg" "$(median ${RPS[$k]})" \
      "$(median ${LAT[$k]})" "${BAD[$k]}" "$([[ -n ${PER[$k]:-} ]] && median ${PER[$k]} || echo -)" "${OTHERS[$k]:-0}"
  done
done
for cfg in $CONFIGS; do
  # shellcheck disable=SC2086
  [[ -z ${RATIOS[$cfg]:-} ]] || printf 'SubmitComment / CheckComment at %s, run by run:%s (median %s)\n' "$cfg" "${RATIOS[$cfg]}" "$(median ${RATIOS[$cfg]})"
done

# Cross-check with the server's log ("comment screened" with the decision):
# every benchmark submit should be approved; a few more than h2load's 2xx
# is normal (calls still in flight when a timed run ends).
approved=$(grep -c 'article_id=news/2026/bench-submit decision=Approved' "$WORK/server.log" || true)
other=$(grep 'article_id=news/2026/bench-submit' "$WORK/server.log" | grep -vc 'decision=Approved' || true)
echo "server log: $((approved - 1)) benchmark submits approved, $other otherwise; h2load 2xx: $TOTAL_OK" >&2
((BUSIEST <= 10)) || echo "warning: other processes used up to $BUSIEST% of the CPUs during a run: rerun on a quiet machine" >&2
