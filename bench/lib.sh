# Shared by the bench scripts (`. "$(dirname "$0")/lib.sh"` after `set -euo pipefail`): the binary, tool checks,
# the work directory with its background processes, the request body and the gateway route they all use.

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# bench_bin PROFILE: the maskgate binary ($MASKGATE_BIN, else target/PROFILE/maskgate), which must exist.
bench_bin() {
    bin="${MASKGATE_BIN:-${CARGO_TARGET_DIR:-$repo/target}/$1/maskgate}"
    local how="cargo build -p maskgate"
    [ "$1" = release ] && how="cargo build --release -p maskgate"
    [ -x "$bin" ] || { echo "build first: $how (or set MASKGATE_BIN)" >&2; exit 1; }
}

# need TOOL...: exits with a message naming the first missing one.
need() {
    for t in "$@"; do command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }; done
}

# bench_work: a fresh $work directory; processes appended to $pids are stopped on exit (and an nginx whose pid
# file is in $work), and $work is removed unless KEEP is set.
bench_work() {
    work="$(mktemp -d)"; pids=()
    trap bench_cleanup EXIT
}
bench_cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -f "$work/nginx.pid" ]; then kill "$(cat "$work/nginx.pid")" 2>/dev/null || true; fi
    wait 2>/dev/null || true
    [ -n "${KEEP:-}" ] || rm -rf "$work"
}

# bench_body FILE HEAD UNIT MIN [PREFIX]: an Anthropic Messages request whose text is PREFIX, then HEAD, then UNIT
# until it is MIN characters long. HEAD and UNIT are `para` (one sentence with six AWS identifiers), `filler`
# (one without), `block` (para and three fillers) or `none`.
bench_body() {
    python3 - "$@" <<'PY'
import json, sys
path, head, unit, min_len = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
prefix = sys.argv[5] if len(sys.argv) > 5 else ""
ids = ["i-0123456789abcdef0", "vpc-0a1b2c3d4e5f67890", "arn:aws:iam::123456789012:role/DeployRole",
       "sg-0123456789abcdef0", "10.0.1.25", "subnet-0abc1234"]
para = "The deployment on {} in {} failed: role {} was denied, security group {} blocks {} in {}. ".format(*ids)
filler = "Logs show retries and back-off; the health check never passed before the timeout. "
pieces = {"para": para, "filler": filler, "block": para + filler * 3, "none": ""}
text = prefix + pieces[head]
while len(text) < min_len:
    text += pieces[unit]
body = {"model": "claude-bench", "max_tokens": 256, "messages": [{"role": "user", "content": text}]}
open(path, "w").write(json.dumps(body))
PY
}

# anthropic_route UPSTREAM_PORT KEY_FILE: the gateway route (TOML) for api.anthropic.com in base-URL mode
# (/anthropic), to a mock provider on loopback, with the provider key read from KEY_FILE.
anthropic_route() {
    cat <<TOML
[[routes]]
host = "api.anthropic.com"
path_prefix = "/anthropic"
upstream = "http://api.anthropic.com"
connect_address = "127.0.0.1:$1"
[routes.credential]
header = "x-api-key"
file = "$2"
TOML
}

# gateway_toml PORT ADMIN_PORT UPSTREAM_PORT KEY_FILE: a gateway config (TOML) listening on loopback with the
# anthropic_route to a mock provider; more routes may be appended.
gateway_toml() {
    cat <<TOML
[gateway]
listen = "127.0.0.1:$1"
admin_listen = "127.0.0.1:$2"
$(anthropic_route "$3" "$4")
TOML
}
