#!/usr/bin/env bash
# p99 overhead of the Redis vault vs the embedded vault at a fixed rate (issue 5), in one run:
#   direct   -> maskgate mock-provider (the upstream, baseline)
#   embedded -> maskgate gateway, [vault] backend = "embedded"      -> same upstream
#   redis    -> maskgate gateway, [vault] backend = "redis" (a local redis-server) -> same upstream
# The load generator is open-loop at a fixed rate (crates/gateway/examples/fixed_rate.rs: latency from each
# request's due time, no coordinated omission) and checks every answer (200, originals back, no placeholder).
# Targets are interleaved over ROUNDS rounds (order rotated); medians over rounds are reported.
# Needs: redis-server, python3, curl. Build first:
#   cargo build --release -p maskgate --bin maskgate
#   cargo build --release -p maskgate-gateway --example fixed_rate
# Usage: bench/redis-bench.sh [RATE=1000] [SECONDS=10] [ROUNDS=3] [BODY_BYTES=1000]   (KEEP=1: keep the work dir)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
rate="${1:-1000}"; secs="${2:-10}"; rounds="${3:-3}"; body_bytes="${4:-1000}"
bench_bin release
gen="${CARGO_TARGET_DIR:-$repo/target}/release/examples/fixed_rate"
[ -x "$gen" ] || { echo "missing $gen: see the build commands at the top of $0" >&2; exit 1; }
need redis-server redis-cli python3 curl
bench_work
read -r UP GW1 AD1 GW2 AD2 RP < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(6)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')

# One new instance id per request (@@N@@: a counter the generator fills in): one allocation per request.
bench_body "$work/body.json" para filler "$((body_bytes - 120))" "New instance i-@@N@@ joined. "
echo "body: $(wc -c < "$work/body.json") bytes, 7 distinct identifiers per request (6 repeated, 1 new)"

redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" > "$work/redis.log" 2>&1 & pids+=($!)
"$bin" mock-provider --listen "127.0.0.1:$UP" > "$work/mock.log" 2>&1 & pids+=($!)
echo "bench-key" > "$work/key"
gwconf() { # listen admin vault-table
  cat <<TOML
[gateway]
listen = "127.0.0.1:$1"
admin_listen = "127.0.0.1:$2"
$(anthropic_route "$UP" "$work/key")
$3
TOML
}
gwconf "$GW1" "$AD1" "" > "$work/embedded.toml"
gwconf "$GW2" "$AD2" "[vault]
backend = \"redis\"
url = \"redis://127.0.0.1:$RP\"" > "$work/redis.toml"
export MASKGATE_VAULT_KEY="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
RUST_LOG=info "$bin" gateway --config "$work/embedded.toml" > "$work/embedded.log" 2>&1 & pids+=($!)
RUST_LOG=info "$bin" gateway --config "$work/redis.toml" > "$work/redis-gw.log" 2>&1 & pids+=($!)
for p in $UP $GW1 $GW2; do
  for _ in $(seq 100); do curl -s -o /dev/null "127.0.0.1:$p/" && break; sleep 0.1; done
done
for a in $AD1 $AD2; do
  for _ in $(seq 50); do curl -sf "127.0.0.1:$a/health/ready" >/dev/null && break; sleep 0.1; done
  curl -sf "127.0.0.1:$a/health/ready" >/dev/null || { echo "FAIL: gateway on admin port $a not ready" >&2; exit 1; }
done

declare -A url=(
  [direct]="http://127.0.0.1:$UP/v1/messages"
  [embedded]="http://127.0.0.1:$GW1/anthropic/v1/messages"
  [redis]="http://127.0.0.1:$GW2/anthropic/v1/messages"
)
# Sanity: both gateways mask (the client gets originals back, no placeholder), and the Redis one uses Redis.
for t in embedded redis; do
  out="$(sed 's/@@N@@/00000000000000001/' "$work/body.json" | curl -s -H 'content-type: application/json' --data-binary @- "${url[$t]}")"
  echo "$out" | grep -q "i-0123456789abcdef0" || { echo "FAIL: $t answer lacks the original" >&2; exit 1; }
  echo "$out" | grep -q "AWS_EC2_" && { echo "FAIL: placeholder in the $t answer" >&2; exit 1; }
done
[ "$(redis-cli -p "$RP" dbsize)" -gt 0 ] || { echo "FAIL: the redis gateway wrote nothing to Redis" >&2; exit 1; }

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
show='import json, sys
d = json.loads(sys.stdin.read())
print("round %d %-9s ok %6d  p50 %7.2f  p99 %7.2f  p99.9 %7.2f  max %7.2f ms  (from send: p50 %.2f p99 %.2f; late sends %d)" % (
    d["round"], d["name"], d["ok"], d["p50_ms"], d["p99_ms"], d["p999_ms"], d["max_ms"], d["send_p50_ms"], d["send_p99_ms"], d["late_sends"]))'
targets=(direct embedded redis)
: > "$work/results.jsonl"
for r in $(seq "$rounds"); do
  for k in 0 1 2; do
    t="${targets[$(( (k + r) % 3 ))]}"
    "$gen" --url "${url[$t]}" --body "$work/body.json" --rate "$rate" --seconds "$secs" --warmup 2 \
      --expect i-0123456789abcdef0 --reject AWS_EC2_ --name "$t" | sed "s/^{/{\"round\":$r,/" | tee -a "$work/results.jsonl" \
      | python3 -c "$show"
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
curl -s "127.0.0.1:$AD1/metrics" > "$work/embedded.metrics"
curl -s "127.0.0.1:$AD2/metrics" > "$work/redis.metrics"
echo "redis keys after the run: $(redis-cli -p "$RP" dbsize)"
# Time Redis itself spent per script call (server side): the rest of a vault call is the round trip and waiting
# for the CPU.
redis-cli -p "$RP" info commandstats | grep -E '^cmdstat_(evalsha|eval):' | tr -d '\r' | sed 's/^/redis server: /'
redis-cli -p "$RP" info cpu | grep -E '^used_cpu_(sys|user):' | tr -d '\r' | tr '\n' ' ' | sed 's/^/redis server: /'; echo

python3 - "$work" "$rounds" <<'PY'
import json, re, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
rows = [json.loads(l) for l in open(f"{work}/results.jsonl")]
by = {}
for r in rows:
    by.setdefault(r["name"], {})[r["round"]] = r
med = lambda xs: statistics.median(xs)
print("\nmedians over %d rounds (ms, from each request's due time)" % rounds)
print(f"{'target':<9} {'p50':>7} {'p99':>7} {'p99.9':>7} {'added p50':>10} {'added p99':>10}")
added = {}
for t in ("direct", "embedded", "redis"):
    rs = by[t]
    a50 = [rs[i]["p50_ms"] - by["direct"][i]["p50_ms"] for i in rs]
    a99 = [rs[i]["p99_ms"] - by["direct"][i]["p99_ms"] for i in rs]
    added[t] = (med(a50), med(a99))
    print(f"{t:<9} {med([r['p50_ms'] for r in rs.values()]):7.2f} {med([r['p99_ms'] for r in rs.values()]):7.2f} "
          f"{med([r['p999_ms'] for r in rs.values()]):7.2f} {med(a50):10.2f} {med(a99):10.2f}")
e, r = added["embedded"], added["redis"]
if e[1] > 0:
    print(f"added p99, redis / embedded: {r[1] / e[1]:.2f}x   (redis - embedded: {r[1] - e[1]:+.2f} ms at p99, {r[0] - e[0]:+.2f} ms at p50)")

def hist(text, name, label=""):
    b = [(float(le), float(n)) for le, n in re.findall(name + r"_bucket\{" + label + r"le=\"([0-9.e+-]+)\"[^}]*\} ([0-9.]+)", text)]
    if not b:
        b = [(float(le), float(n)) for le, n in re.findall(name + r"_bucket\{[^}]*le=\"([0-9.e+-]+)\"[^}]*\} ([0-9.]+)", text)]
    total = b[-1][1] if b else 0
    def q(p):
        for le, n in b:
            if n >= p * total: return le * 1000
        return float("inf")
    return total, q(0.5), q(0.99)
print("\nthe gateways' own histograms over all rounds (bucket upper bounds, ms):")
for g in ("embedded", "redis"):
    m = open(f"{work}/{g}.metrics").read()
    n, p50, p99 = hist(m, "maskgate_gateway_overhead_seconds")
    vn, v50, v99 = hist(m, "maskgate_vault_duration_seconds")
    print(f"  {g:<9} overhead: n {n:.0f} p50 <= {p50:.3f} p99 <= {p99:.3f}   vault assign: n {vn:.0f} p50 <= {v50:.3f} p99 <= {v99:.3f}")
    errs = re.findall(r'maskgate_vault_operations_total\{op="assign",result="(error|timeout)"\} ([0-9]+)', m)
    if any(int(n) for _, n in errs):
        print(f"FAIL: {g}: vault errors {errs}", file=sys.stderr); sys.exit(1)
PY
