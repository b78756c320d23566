#!/usr/bin/env bash
# Peak memory and time of `maskgate mask --json` on AWS API output (`scripts/gen-request.py --aws-output N`: a
# tool_use input of N described EC2 instances, ~360 bytes and ~27 strings each): the request shape with the most
# strings per byte. Prints, per size, the median peak RSS (/usr/bin/time %M) and wall time over ROUNDS runs, and
# checks that the output holds placeholders.
# usage: bench/json-memory.sh [COUNTS="3000 15000 28000"] [ROUNDS=3]   (release build; MASKGATE_BIN for another
#        binary; MASKGATE_BASE=/path/to/older/maskgate measures it too, interleaved)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
counts="${1:-3000 15000 28000}"; rounds="${2:-3}"
bench_bin release
need python3 /usr/bin/time
bench_work
for n in $counts; do
    python3 "$repo/scripts/gen-request.py" --aws-output "$n" > "$work/r$n.json"
    "$bin" mask --json < "$work/r$n.json" > "$work/out.json"
    grep -q 'AWS_EC2_[0-9]\{3,\}' "$work/out.json" || { echo "no placeholder in the output for $n" >&2; exit 1; }
done
run() { /usr/bin/time -f "%M %e" "$2" mask --json < "$work/r$3.json" 2>&1 > /dev/null | tail -1 | sed "s/^/$1 $3 /"; }
for _ in $(seq "$rounds"); do
    for n in $counts; do
        run mask "$bin" "$n"
        if [ -n "${MASKGATE_BASE:-}" ]; then run base "$MASKGATE_BASE" "$n"; fi
    done
done | python3 -c '
import sys, os, statistics as st, collections
work = sys.argv[1]
d = collections.defaultdict(list)
for line in sys.stdin:
    who, n, kb, s = line.split(); d[(who, int(n))].append((int(kb), float(s)))
for (who, n), v in sorted(d.items(), key=lambda x: (x[0][1], x[0][0] != "mask")):
    size = os.path.getsize(f"{work}/r{n}.json") / 1e6
    kb, s = st.median(x[0] for x in v), st.median(x[1] for x in v)
    print(f"{who:5} {n:6} instances {size:6.2f} MB   peak RSS {kb / 1024:7.1f} MB ({kb / 1024 / size:5.1f}x)   wall {s:.2f} s")
' "$work"
