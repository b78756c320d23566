#!/usr/bin/env bash
# Redis memory per mapping (README "Operations", sizing): N distinct EC2 instance ids are masked through a
# `maskgate gateway` on the Redis vault (own redis-server, no persistence) in requests of 100 ids each; prints
# Redis' used_memory before and after and the bytes per mapping (a mapping = forward + reverse key, with TTL).
# Usage: bench/redis-memory.sh [MAPPINGS=10000]   (MASKGATE_BIN to point at a binary; debug builds are fine)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
n="${1:-10000}"
bench_bin debug
need redis-server redis-cli curl python3
bench_work
RP=46379; GP=48000; GA=48001; MP=49999
redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 & pids+=($!)
cat > "$work/gw.toml" <<T
[gateway]
listen = "127.0.0.1:$GP"
admin_listen = "127.0.0.1:$GA"
[vault]
backend = "redis"
url = "redis://127.0.0.1:$RP/0"
[[routes]]
host = "api.anthropic.com"
path_prefix = "/anthropic"
upstream = "http://127.0.0.1:$MP"
keep_client_credentials = true
T
"$bin" mock-provider --listen "127.0.0.1:$MP" >/dev/null 2>&1 & pids+=($!)
MASKGATE_VAULT_KEY="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" RUST_LOG=warn \
  "$bin" gateway --config "$work/gw.toml" >"$work/gw.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do curl -sf "127.0.0.1:$GA/health/ready" >/dev/null && break; sleep 0.2; done
mem() { redis-cli -p "$RP" info memory | awk -F: '/^used_memory:/{print $2}' | tr -d '\r'; }
before="$(mem)"
python3 - "$GP" "$n" <<'P'
import json, sys, urllib.request
port, n = int(sys.argv[1]), int(sys.argv[2])
for r in range(0, n, 100):
    ids = " ".join("i-%017x" % (0x10000000000 + r + k) for k in range(min(100, n - r)))
    body = json.dumps({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": ids}]}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/anthropic/v1/messages", body,
                                 {"content-type": "application/json"})
    out = urllib.request.urlopen(req).read().decode()
    assert "i-" in out and "AWS_EC2_" not in out, "the answer was not unmasked"
P
after="$(mem)"
echo "redis $(redis-server --version | awk '{print $3}'): $n mappings, $(redis-cli -p "$RP" dbsize) keys," \
     "used_memory $before -> $after bytes: $(( (after - before) / n )) bytes per mapping"
