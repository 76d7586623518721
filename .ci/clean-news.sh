#!/usr/bin/env bash
# Prints the paths of the clean news text the toxicity model is trained and
# measured with: the Lee corpus (349 ABC news articles; M. D. Lee, B. Pincombe,
# M. Welsh, "An empirical evaluation of models of text document similarity",
# CogSci 2005), shipped in gensim's wheel as test data. Downloads the wheel
# from PyPI once (no install), into $XDG_CACHE_HOME/commentd-ci.
set -euo pipefail
GENSIM_VERSION=${GENSIM_VERSION:-4.3.3}
dir=${XDG_CACHE_HOME:-$HOME/.cache}/commentd-ci/lee-corpus-$GENSIM_VERSION
files=("$dir/lee_background.cor" "$dir/lee.cor")
if [[ ! -s ${files[0]} || ! -s ${files[1]} ]]; then
    mkdir -p "$dir"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: --python-version 3.11 --platform manylinux2014_x86_64 \
        "gensim==$GENSIM_VERSION" -d "$dir/wheel" >&2
    python3 - "$dir" <<'PY'
import glob, sys, zipfile
out = sys.argv[1]
wheel = glob.glob(f"{out}/wheel/gensim-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    for name in ("lee_background.cor", "lee.cor"):
        with open(f"{out}/{name}", "wb") as f:
            f.write(z.read(f"gensim/test/test_data/{name}"))
PY
    rm -rf "$dir/wheel"
fi
printf '%s\n' "${files[@]}"
