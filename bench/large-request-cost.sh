#!/usr/bin/env bash
# What one large request costs the gateway process: CPU time, minor page faults and the median duration the access
# log records, over COUNT sequential 1 MB requests (3,000 described EC2 instances, AWS API output as a tool_use
# input) after five warm-up ones; and the process's RSS afterwards. Read from /proc/PID/stat, so it counts the
# gateway alone, not the mock or curl.
# usage: bench/large-request-cost.sh [COUNT=30] [ROUNDS=3]   (release build; MASKGATE_BIN for another binary;
#        MASKGATE_BASE=/path/to/older/maskgate adds that binary's gateway to every round; GATEWAY_ENV="K=V ..."
#        sets environment variables for the gateways, e.g. GLIBC_TUNABLES)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
count="${1:-30}"; rounds="${2:-3}"
bench_bin release
need curl python3
bench_work
UP=19300; GW=19310

python3 "$repo/scripts/gen-request.py" --aws-output 3000 > "$work/big.json"
"$bin" mock-provider --listen "127.0.0.1:$UP" > "$work/mock.log" 2>&1 & pids+=($!)
echo "bench-key" > "$work/key"
gateway_toml "$GW" "$((GW + 1))" "$UP" "$work/key" > "$work/gw.toml"
req() {
    [ "$(curl -s -o "$work/out" -w '%{http_code}' -H 'content-type: application/json' \
        --data-binary @"$work/big.json" "http://127.0.0.1:$GW/anthropic/v1/messages")" = 200 ] \
        || { echo "request failed: $(head -c 300 "$work/out")" >&2; exit 1; }
}
# measure NAME BINARY: one gateway, COUNT requests.
measure() {
    # shellcheck disable=SC2086
    env ${GATEWAY_ENV:-} RUST_LOG=info "$2" gateway --config "$work/gw.toml" > "$work/gw.log" 2>&1 &
    local pid=$!
    for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$((GW + 1))/health/live" && break; sleep 0.1; done
    for _ in 1 2 3 4 5; do req; done
    # Fields 10, 14 and 15 of /proc/PID/stat: minor faults, user and system time in clock ticks.
    read -r f0 t0 < <(awk '{print $10, $14 + $15}' "/proc/$pid/stat")
    for _ in $(seq "$count"); do req; done
    read -r f1 t1 < <(awk '{print $10, $14 + $15}' "/proc/$pid/stat")
    local rss; rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    local dur; dur=$(grep -o '"duration_ms":[0-9.]*' "$work/gw.log" | tail -n "$count" | cut -d: -f2 | sort -n \
        | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
    echo "$1 $(( (f1 - f0) / count )) $(echo "($t1 - $t0) * 1000 / $(getconf CLK_TCK) / $count" | bc -l) $rss $dur"
}
for _ in $(seq "$rounds"); do
    measure gateway "$bin"
    if [ -n "${MASKGATE_BASE:-}" ]; then measure base "$MASKGATE_BASE"; fi
done > "$work/runs.txt"
python3 - "$work/runs.txt" "$(wc -c < "$work/big.json")" <<'PY'
import sys, statistics as st, collections
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    name, *v = line.split()
    d[name].append([float(x) for x in v])
print(f"request: {int(sys.argv[2]):,} bytes; medians over rounds")
for name, runs in d.items():
    med = [st.median(r[i] for r in runs) for i in range(4)]
    print(f"{name:8} minor faults/request {med[0]:7.0f}   CPU/request {med[1]:6.1f} ms   "
          f"duration p50 {med[3]:6.1f} ms   RSS after {med[2] / 1024:5.0f} MB")
PY
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), CPUs: $(nproc)"
