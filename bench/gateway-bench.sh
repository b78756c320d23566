#!/usr/bin/env bash
# Gateway latency benchmark: the same 10 KB JSON request (with AWS identifiers) sent at a fixed rate
# (hey -q) and at full speed (wrk) to (1) the mock upstream directly, (2) nginx proxy_pass to it, (3) the
# maskgate gateway in front of it. Prints p50/p99, throughput, and the gateway's own overhead histogram.
# Fails when a run had errors or no successful requests. Needs: apt-get install wrk nginx hey.
# Usage: bench/gateway-bench.sh [RATE_PER_SEC=1000] [SECONDS=15]   (KEEP=1: keep the work dir)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
rate="${1:-1000}"; secs="${2:-15}"
bench_bin release
need wrk nginx hey python3
bench_work
UP=19000; GW=18080; ADMIN=18081; NG=18090

bench_body "$work/body.json" none block 9500
echo "body: $(wc -c < "$work/body.json") bytes"

"$bin" mock-provider --listen "127.0.0.1:$UP" > "$work/mock.log" 2>&1 & pids+=($!)
echo "bench-key" > "$work/key"
gateway_toml "$GW" "$ADMIN" "$UP" "$work/key" > "$work/gw.toml"
RUST_LOG=info "$bin" gateway --config "$work/gw.toml" > "$work/gw.log" 2>&1 & pids+=($!)
cat > "$work/nginx.conf" <<NGX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work; proxy_temp_path $work; fastcgi_temp_path $work; uwsgi_temp_path $work; scgi_temp_path $work;
  client_max_body_size 32m;
  upstream up { server 127.0.0.1:$UP; keepalive 64; }
  server {
    listen 127.0.0.1:$NG;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGX
nginx -c "$work/nginx.conf"
for p in $UP $GW $NG; do
  for _ in $(seq 50); do curl -s -o /dev/null "127.0.0.1:$p/" && break; sleep 0.1; done
done
curl -sf "127.0.0.1:$ADMIN/health/ready" >/dev/null

declare -A url=(
  [direct]="http://127.0.0.1:$UP/v1/messages"
  [nginx]="http://127.0.0.1:$NG/v1/messages"
  [gateway]="http://127.0.0.1:$GW/anthropic/v1/messages"
)
# Sanity: the gateway masks (the upstream must see placeholders, the client originals).
out="$(curl -s -H 'content-type: application/json' --data-binary @"$work/body.json" "${url[gateway]}")"
echo "$out" | grep -q "i-0123456789abcdef0" || { echo "FAIL: gateway answer lacks the original" >&2; exit 1; }
echo "$out" | grep -q "AWS_EC2_" && { echo "FAIL: placeholder in the gateway answer" >&2; exit 1; }

conc=10; q=$(( rate / conc ))
cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$work/body.json", "rb"); wrk.body = f:read("*a"); f:close()
LUA
printf "\none client, one request at a time (2000 requests): added latency without queueing\n"
printf "%-8s %10s %10s\n" target "p50 ms" "p99 ms"
for t in direct nginx gateway; do
  hey -n 2000 -c 1 -m POST -T application/json -D "$work/body.json" "${url[$t]}" > "$work/seq-$t.txt"
  python3 - "$t" "$work/seq-$t.txt" <<'PY'
import re, sys
t, hey = sys.argv[1], open(sys.argv[2]).read()
p = lambda q: float(re.search(r"\s%d%% in ([0-9.]+) secs" % q, hey).group(1)) * 1000
ok = sum(int(n) for c, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", hey) if c.startswith("2"))
print(f"{t:<8} {p(50):>10.2f} {p(99):>10.2f}")
if ok != 2000:
    print(f"FAIL: {t}: {ok}/2000 ok", file=sys.stderr); sys.exit(1)
PY
done
curl -s "127.0.0.1:$ADMIN/metrics" > "$work/metrics-seq.txt"
python3 - "$work/metrics-seq.txt" <<'PY'
import sys
v = {}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) == 2 and not line.startswith("#"):
        v[parts[0].split("{")[0]] = float(parts[1])
up = v["maskgate_upstream_duration_seconds_sum"] / v["maskgate_upstream_duration_seconds_count"]
oh = v["maskgate_gateway_overhead_seconds_sum"] / v["maskgate_gateway_overhead_seconds_count"]
print(f"gateway, mean per request (sequential runs): upstream wait {up*1000:.3f} ms, gateway overhead {oh*1000:.3f} ms")
PY

printf "\nfixed rate (hey, %s clients) and full speed (wrk, 16 connections), %s s each\n" "$conc" "$secs"
printf "%-8s %10s %10s %10s %12s %14s\n" target "rate" "p50 ms" "p99 ms" "ok/total" "wrk max req/s"
for t in direct nginx gateway; do
  hey -z "${secs}s" -c $conc -q $q -m POST -T application/json -D "$work/body.json" "${url[$t]}" > "$work/hey-$t.txt"
  wrk -t2 -c16 -d"${secs}s" -s "$work/post.lua" "${url[$t]}" > "$work/wrk-$t.txt"
  python3 - "$t" "$work/hey-$t.txt" "$work/wrk-$t.txt" "$rate" <<'PY'
import re, sys
t, hey, wrk, rate = sys.argv[1], open(sys.argv[2]).read(), open(sys.argv[3]).read(), sys.argv[4]
def pct(p):
    m = re.search(r"\s%d%% in ([0-9.]+) secs" % p, hey)
    return float(m.group(1)) * 1000 if m else float("nan")
ok = sum(int(n) for c, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", hey) if c.startswith("2"))
total = sum(int(n) for c, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", hey))
errs = re.search(r"Error distribution", hey)
rps = re.search(r"Requests/sec:\s+([0-9.]+)", wrk)
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk)
print(f"{t:<8} {rate:>10} {pct(50):>10.2f} {pct(99):>10.2f} {ok:>6}/{total:<6} {float(rps.group(1)) if rps else 0:>13.0f}")
if ok == 0 or ok != total or errs or non2xx or not rps:
    print(f"FAIL: {t}: errors or non-2xx responses", file=sys.stderr); sys.exit(1)
PY
done

echo; echo "gateway overhead (maskgate_gateway_overhead_seconds, all requests above):"
curl -s "127.0.0.1:$ADMIN/metrics" | python3 -c '
import re, sys
b = [(float(le), float(n)) for le, n in re.findall(r"maskgate_gateway_overhead_seconds_bucket\{le=\"([0-9.e+-]+)\"\} ([0-9.]+)", sys.stdin.read())]
total = b[-1][1] if b else 0
def q(p):
    for le, n in b:
        if n >= p * total: return le * 1000
    return float("inf")
print(f"  requests {total:.0f}  p50 <= {q(0.5):.3f} ms  p90 <= {q(0.9):.3f} ms  p99 <= {q(0.99):.3f} ms  (bucket upper bounds)")
for le, n in b:
    if n: print(f"    le {le*1000:9.3f} ms  {n:9.0f}")
'
