#!/usr/bin/env bash
# Sidecar hop benchmark: added latency of the sidecar (CONNECT + TLS termination with a minted leaf + forward to
# the gateway) against calling the gateway directly, in the same run, in front of the gateway's mock provider.
# Explicit-proxy mode (HTTPS_PROXY-style CONNECT, no root needed): the per-request work of the sidecar is the same
# as in transparent mode once the connection is accepted.
#
# Targets (one client, one request at a time: latency without queueing; rounds interleaved):
#   direct      app -> gateway (http, keep-alive), base-URL mode
#   sidecar     app -(CONNECT, TLS, keep-alive)-> sidecar -(http, pooled, token)-> gateway
#   sidecar-tls app -(CONNECT, TLS, keep-alive)-> sidecar -(https, mTLS, h2)-> gateway's TLS listener
#   sidecar-new like sidecar, but a new connection per request (CONNECT + TLS handshake each time)
# Fails on any non-200 answer, or when the sidecars did not carry the requests.
# Needs: hey, curl, python3. Usage: bench/sidecar-bench.sh [REQUESTS_PER_ROUND=2000] [ROUNDS=3]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
n="${1:-2000}"; rounds="${2:-3}"
bench_bin release
need hey curl python3 ss
bench_work
UP=19100; GW=18180; GWTLS=18443; ADMIN=18181; SC=15101; SCA=15100; SC2=15201; SC2A=15200

bench_body "$work/body.json" block none 0
echo "body: $(wc -c < "$work/body.json") bytes, $n requests per target and round, $rounds rounds"

"$bin" ca init --dir "$work/ca" >/dev/null
"$bin" ca env --dir "$work/ca" >/dev/null
"$bin" ca init --dir "$work/mesh" >/dev/null
"$bin" ca issue --dir "$work/mesh" --name 127.0.0.1 >/dev/null
"$bin" ca issue --dir "$work/mesh" --client --name bench-sidecar >/dev/null
echo "bench-key" > "$work/key"; echo "bench-sidecar-token" > "$work/token"

"$bin" mock-provider --listen "127.0.0.1:$UP" > "$work/mock.log" 2>&1 & pids+=($!)
cat > "$work/gw.toml" <<TOML
[gateway]
listen = "127.0.0.1:$GW"
admin_listen = "127.0.0.1:$ADMIN"
sidecar_token_file = "$work/token"
[gateway.tls]
listen = "127.0.0.1:$GWTLS"
cert = "$work/mesh/server.crt"
key = "$work/mesh/server.key"
client_ca = "$work/mesh/ca.crt"
$(anthropic_route "$UP" "$work/key")
TOML
RUST_LOG=warn "$bin" gateway --config "$work/gw.toml" > "$work/gw.log" 2>&1 & pids+=($!)
common="ca_cert = \"$work/ca/ca.crt\"
ca_key = \"$work/ca/ca.key\"
intercept = [\"api.anthropic.com\"]
tenant = \"bench\""
cat > "$work/sc.toml" <<TOML
[sidecar]
listen = "127.0.0.1:$SC"
admin_listen = "127.0.0.1:$SCA"
gateway = "http://127.0.0.1:$GW"
token_file = "$work/token"
$common
TOML
cat > "$work/sc2.toml" <<TOML
[sidecar]
listen = "127.0.0.1:$SC2"
admin_listen = "127.0.0.1:$SC2A"
gateway = "https://127.0.0.1:$GWTLS"
gateway_ca = "$work/mesh/ca.crt"
gateway_client_cert = "$work/mesh/client.crt"
gateway_client_key = "$work/mesh/client.key"
$common
TOML
MASKGATE_LOG=warn "$bin" sidecar --config "$work/sc.toml" > "$work/sc.log" 2>&1 & pids+=($!)
MASKGATE_LOG=warn "$bin" sidecar --config "$work/sc2.toml" > "$work/sc2.log" 2>&1 & pids+=($!)
for port in $ADMIN $SCA $SC2A; do
  for _ in $(seq 100); do curl -sf "127.0.0.1:$port/health/ready" >/dev/null && break; sleep 0.1; done
done

# Correctness first: through each sidecar the app gets its originals back.
for p in $SC $SC2; do
  out="$(curl -sS --fail-with-body --cacert "$work/ca/bundle.pem" -x "http://127.0.0.1:$p" \
    https://api.anthropic.com/v1/messages -H 'content-type: application/json' -d @"$work/body.json")"
  for id in i-0123456789abcdef0 arn:aws:iam::123456789012:role/DeployRole; do
    grep -q -- "$id" <<<"$out" || { echo "sidecar :$p answer lacks $id: $out" >&2; exit 1; }
  done
  if grep -q AWS_EC2_ <<<"$out"; then echo "placeholder in the answer via :$p" >&2; exit 1; fi
done

# Keep-alive rows: one curl process sends the n requests in sequence on one connection (through the proxy: one
# CONNECT tunnel), timing each (%{time_total}, microseconds); the first request (connection set-up) is dropped.
# The new-connection row uses hey -disable-keepalive (0.1 ms resolution).
for i in $(seq "$n"); do printf 'url = "%s"\noutput = "/dev/null"\n' URL; done > "$work/urls.tmpl"
stats="$work/stats"; : > "$stats"
run_curl() { # name, url, curl args...
  local name="$1" url="$2"; shift 2
  sed "s|URL|$url|" "$work/urls.tmpl" > "$work/urls.cfg"
  curl -sS -K "$work/urls.cfg" -w '%{http_code} %{time_total}\n' -H 'content-type: application/json' \
    -d @"$work/body.json" --cacert "$work/ca/bundle.pem" "$@" > "$work/times" \
    || { echo "$name: curl failed" >&2; exit 1; }
  python3 - "$name" "$n" "$work/times" >> "$stats" <<'PY'
import sys
name, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = [l.split() for l in open(path)]
bad = [r for r in rows if r[0] != "200"]
if len(rows) != n or bad:
    sys.exit(f"{name}: {len(rows)} answers, {len(bad)} not 200")
t = sorted(float(r[1]) * 1000 for r in rows[1:])
print(name, t[len(t) // 2], t[int(len(t) * 0.99)])
PY
}
run_hey() { # name, hey args...
  local name="$1"; shift
  local out; out="$(hey -n "$n" -c 1 -m POST -T application/json -D "$work/body.json" "$@")"
  local ok; ok="$(grep -Eo '\[200\][[:space:]]+[0-9]+' <<<"$out" | awk '{print $2}')"
  if [ "${ok:-0}" != "$n" ] || grep -q 'Error distribution' <<<"$out"; then echo "$name: errors" >&2; echo "$out" >&2; exit 1; fi
  echo "$name $(awk '/ 50% in/ {print $3*1000}' <<<"$out") $(awk '/ 99% in/ {print $3*1000}' <<<"$out")" >> "$stats"
}
url=https://api.anthropic.com/v1/messages
for r in $(seq "$rounds"); do
  run_curl direct "http://127.0.0.1:$GW/anthropic/v1/messages"
  run_curl sidecar "$url" -x "http://127.0.0.1:$SC"
  run_curl sidecar-tls "$url" -x "http://127.0.0.1:$SC2"
  run_hey sidecar-new -disable-keepalive -x "http://127.0.0.1:$SC" "$url"
done
python3 - "$stats" <<'PY'
import statistics, sys
rows = {}
for l in open(sys.argv[1]):
    name, p50, p99 = l.split()
    rows.setdefault(name, []).append((float(p50), float(p99)))
base = statistics.median(p for p, _ in rows["direct"])
print(f"\n{'target':12} {'p50 ms per round':30} {'p99 ms per round':30} median p50, added vs direct")
for name, rs in rows.items():
    m = statistics.median(p for p, _ in rs)
    print(f"{name:12} {' '.join(f'{p:.3f}' for p, _ in rs):30} {' '.join(f'{q:.3f}' for _, q in rs):30} "
          f"{m:.3f} ms, {m - base:+.3f} ms")
PY

# The sidecars carried the requests (their own counters), and the TLS hop had no gateway error.
metric() { curl -s "127.0.0.1:$1/metrics" | awk -v k="$2" '$1==k {print $2}'; }
for a in $SCA $SC2A; do
  req="$(metric $a maskgate_sidecar_requests_total)"; err="$(metric $a maskgate_sidecar_gateway_errors_total)"
  echo "sidecar admin :$a requests=$req gateway_errors=$err"
  [ "$err" = 0 ] && [ "$req" -ge "$n" ] || { echo "sidecar :$a did not carry the run" >&2; exit 1; }
done
# h2 over the TLS hop: 8 concurrent app connections share the sidecar's connection(s) to the gateway.
hey -n 800 -c 8 -m POST -T application/json -D "$work/body.json" -x "http://127.0.0.1:$SC2" "$url" >/dev/null &
hp=$!; sleep 1
echo "concurrent run via the TLS hop (8 app connections): sidecar->gateway TLS connections: $(ss -Htn state established "( dport = :$GWTLS )" | wc -l)"
wait $hp
