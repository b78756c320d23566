#!/usr/bin/env bash
# `maskgate mask` end to end against `rg --count-matches` with a comparable pattern set (issue 2's speed target:
# mask ≥ 2× rg), on the same generated file, interleaved rounds; prints the median wall time of each and the ratio.
# usage: bench/mask-vs-rg.sh [MB] [ROUNDS] [SHAPES]    (release build; MASKGATE_BIN for another binary; KEEP=1 keeps the file;
#        MASKGATE_BASE=/path/to/older/maskgate adds its `mask` to every round, for a side-by-side comparison)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
# `real`: lines from files of this machine instead of the generator's fifteen; `varied`: lines drawn afresh from parts
# (UUID request ids, trace ids, hashes); `dense`, `base64`, `one-line`, `json-logs`: harder shapes (see
# scripts/gen-mixed.py). Several at once: "real,base64".
mb=${1:-64}; rounds=${2:-7}; corpus=${3:-}
bench_bin release
need rg python3
bench_work
input="$work/mixed$mb.txt"
flags=(); IFS=, read -ra shapes <<< "$corpus"; for c in "${shapes[@]}"; do flags+=("--$c"); done
python3 "$repo/scripts/gen-mixed.py" "$mb" "${flags[@]}" > "$input"
# A fast run that masked nothing would be a failure: the output must hold placeholders and unmask to the input.
"$bin" mask --mappings "$work/map.json" < "$input" > "$work/masked.txt"
grep -q 'AWS_EC2_[0-9]\{3,\}' "$work/masked.txt" || { echo "mask output holds no placeholder" >&2; exit 1; }
"$bin" unmask --mappings "$work/map.json" < "$work/masked.txt" | cmp -s - "$input" \
    || { echo "unmask(mask(input)) != input" >&2; exit 1; }
echo "$(grep -o 'AWS_[A-Z0-9_]*_[0-9]\{3,\}' "$work/masked.txt" | wc -l) placeholders in the masked output; round trip ok"
wall() { local s e; s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
for _ in $(seq "$rounds"); do
    echo "mask $(wall "$bin" mask < "$input")"
    echo "mask1 $(wall "$bin" mask --threads 1 < "$input")"
    echo "rg $(wall rg --count-matches -f "$repo/bench/rg-patterns.txt" "$input")"
    if [ -n "${MASKGATE_BASE:-}" ]; then echo "base $(wall "$MASKGATE_BASE" mask < "$input")"; fi
done | python3 -c '
import sys, statistics as st, collections
d = collections.defaultdict(list)
for line in sys.stdin:
    k, v = line.split(); d[k].append(float(v))
m = {k: st.median(v) for k, v in d.items()}
mb = float(sys.argv[1])
for k in ("mask", "mask1", "rg", "base"):
    if k not in m: continue
    print(f"{k:6} median {m[k]:.3f} s = {mb * 1048576 / m[k] / 1e6:.0f} MB/s   all: {sorted(round(x, 3) for x in d[k])}")
r, r1 = m["rg"] / m["mask"], m["rg"] / m["mask1"]
print(f"speed of mask (all CPUs) / rg: {r:.2f}x   mask --threads 1 / rg: {r1:.2f}x")
if "base" in m:
    rb = m["rg"] / m["base"]
    print(f"base mask (all CPUs) / rg: {rb:.2f}x")
' "$mb"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), CPUs: $(nproc)"
