#!/usr/bin/env bash
# Small requests next to large ones: what a 1 MB request (3,000 described EC2 instances, AWS API output as a
# tool_use input) does to the latency of small requests served by the same gateway. Small requests (~400 bytes,
# six identifiers) go at a fixed rate alone, then with large ones at a low fixed rate beside them; both open-loop
# (crates/gateway/examples/fixed_rate.rs, latency from the due time). Interleaved rounds; prints the median of the
# rounds' p50 / p99 of each.
# usage: bench/mixed-latency.sh [ROUNDS=5] [SMALL_RATE=200] [BIG_RATE=4] [SECONDS=8]
#        (release build; MASKGATE_BIN for another binary; MASKGATE_BASE=/path/to/older/maskgate adds a gateway
#        of that binary to every round, for a side-by-side comparison)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
rounds="${1:-5}"; small_rate="${2:-200}"; big_rate="${3:-4}"; secs="${4:-8}"
bench_bin release
need python3
fr="${CARGO_TARGET_DIR:-$repo/target}/release/examples/fixed_rate"
[ -x "$fr" ] || { echo "build first: cargo build --release -p maskgate-gateway --example fixed_rate" >&2; exit 1; }
bench_work
UP=19200

python3 "$repo/scripts/gen-request.py" --aws-output 3000 > "$work/big.json"
cat > "$work/small.json" <<'JSON'
{"model":"claude-bench","max_tokens":256,"messages":[{"role":"user","content":"Why is instance i-0123456789abcdef0 in subnet-0a1b2c3d4e5f60718 of account 123456789012 unreachable from 10.1.2.3? Security group sg-0f1e2d3c4b5a69788 allows 443; check arn:aws:iam::123456789012:role/AppRole too."}]}
JSON
echo "bodies: small $(wc -c < "$work/small.json") bytes, big $(wc -c < "$work/big.json") bytes"

# Two mocks: the large requests' own (its JSON parse of 1 MB would otherwise hold up the small ones in the mock,
# which is not what is measured here), reached through a second route of the gateway (/bulk).
"$bin" mock-provider --listen "127.0.0.1:$UP" > "$work/mock.log" 2>&1 & pids+=($!)
"$bin" mock-provider --listen "127.0.0.1:$((UP + 1))" > "$work/mock-bulk.log" 2>&1 & pids+=($!)
echo "bench-key" > "$work/key"
# gateway NAME BINARY PORT: one gateway in front of the mocks.
gateway() {
    gateway_toml "$3" "$(($3 + 1))" "$UP" "$work/key" > "$work/$1.toml"
    cat >> "$work/$1.toml" <<TOML
[[routes]]
host = "bulk.anthropic.test"
path_prefix = "/bulk"
upstream = "http://api.anthropic.com"
connect_address = "127.0.0.1:$((UP + 1))"
[routes.credential]
header = "x-api-key"
file = "$work/key"
TOML
    "$2" gateway --config "$work/$1.toml" > "$work/$1.log" 2>&1 & pids+=($!)
}
names=(gateway); gateway gateway "$bin" 19210
if [ -n "${MASKGATE_BASE:-}" ]; then names+=(base); gateway base "$MASKGATE_BASE" 19220; fi
sleep 1
port() { if [ "$1" = gateway ]; then echo 19210; else echo 19220; fi; }
url() { echo "http://127.0.0.1:$(port "$1")/${2:-anthropic}/v1/messages"; }

# Every response is checked: no placeholder of the instances may come back, an id of the small body must.
small() {
    "$fr" --url "$(url "$1")" --body "$work/small.json" --rate "$small_rate" --seconds "$secs" --warmup 1 \
        --expect i-0123456789abcdef0 --reject AWS_EC2_ --name "$2"
}
for r in $(seq "$rounds"); do
    for n in "${names[@]}"; do
        small "$n" "$n alone"
        "$fr" --url "$(url "$n" bulk)" --body "$work/big.json" --rate "$big_rate" --seconds "$((secs + 2))" --warmup 0 \
            --name "$n big" > "$work/big-$r-$n.out" &
        sleep 0.5
        small "$n" "$n beside big"
        wait $!
        cat "$work/big-$r-$n.out"
    done
done > "$work/runs.jsonl"
python3 - "$work/runs.jsonl" <<'PY'
import sys, json, statistics as st, collections
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    j = json.loads(line)
    if j["failed"] or j["skipped"]:
        sys.exit("%s: %d failed, %d skipped: %s" % (j["name"], j["failed"], j["skipped"], j.get("first_failure")))
    d[j["name"]].append(j)
for name, runs in d.items():
    med = lambda k: st.median(r[k] for r in runs)
    print("%-22s p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms  (p99 of each round: %s)"
          % (name, med("p50_ms"), med("p99_ms"), med("max_ms"), [r["p99_ms"] for r in runs]))
PY
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), CPUs: $(nproc)"
