#!/usr/bin/env bash
# Runs one fuzz target (or all, one after another) with its dictionary, seeds and input size bound.
# usage: fuzz/run.sh [TARGET|all] [SECONDS]   (default: all, 600 s each; nightly toolchain and cargo-fuzz needed)
set -euo pipefail
cd "$(dirname "$0")"
secs=${2:-600}
run() {
    local t=$1 dict=$2 max_len=$3
    mkdir -p "corpus/$t"
    cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        ${dict:+-dict=dicts/$dict.dict} -max_len="$max_len" -timeout=10 -max_total_time="$secs" -print_final_stats=1
}
case ${1:-all} in
    sse_stream) run sse_stream sse 4096 ;;
    json_mask) run json_mask json 8192 ;;
    detect) run detect text 4096 ;;
    no_forgery) run no_forgery "" 1024 ;;
    all) for t in sse_stream json_mask detect no_forgery; do "$0" "$t" "$secs"; done ;;
    *) echo "unknown target $1" >&2; exit 2 ;;
esac
