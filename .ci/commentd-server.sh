# Sourced by the .ci scripts: start and stop the commentd binary ($BIN).

# start_commentd LOG ARGS...: runs $BIN on a free loopback port (port 0: the
# server logs the real one) with ARGS; sets pid, and addr once it listens
# (empty when it did not start within 30 s).
start_commentd() {
    local log=$1
    shift
    NO_COLOR=1 RUST_LOG=info "$BIN" --listen 127.0.0.1:0 --log-format text "$@" 2>"$log" &
    pid=$!
    addr=
    for _ in $(seq 300); do
        addr=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -o 'commentd listening on [0-9.]*:[0-9]*' | head -n1 | awk '{print $4}')
        [[ -n $addr ]] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
}

# stop_commentd: SIGTERM, up to 15 s to exit, then SIGKILL.
stop_commentd() {
    if [[ -n ${pid:-} ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
    fi
    if [[ -n ${pid:-} ]]; then wait "$pid" 2>/dev/null; fi
    pid=
}
