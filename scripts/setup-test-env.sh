#!/usr/bin/env bash
# Installs what the tests need: redis-server (the Redis vault and rate-limit tests start their own on a free
# port), and the Python venv with the official LLM SDKs used by the gateway's SDK tests
# (crates/gateway/tests/gateway/sdk.rs). Idempotent. Usage: scripts/setup-test-env.sh [VENV_DIR]
# Default VENV_DIR: <repo>/.venv-sdk (the tests look there, or in $MASKGATE_SDK_VENV).
set -euo pipefail

# redis-server: only when missing (no system service is used; each test starts its own server).
if ! command -v redis-server >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing redis-server (apt)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
    # The package may start a system service; the tests never use it.
    if command -v service >/dev/null 2>&1; then service redis-server stop >/dev/null 2>&1 || true; fi
  else
    echo "redis-server missing and cannot be installed here (need root and apt-get): Redis tests will fail under CI" >&2
  fi
fi
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-${MASKGATE_SDK_VENV:-$repo/.venv-sdk}}"
# The sidecar's end-to-end test (crates/sidecar/tests) needs iptables and iproute2 (`ip netns`); installed only
# when missing, and only where apt-get and root are available.
missing=()
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y "${missing[@]}" >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y "${missing[@]}" >/dev/null; }
  else
    echo "note: ${missing[*]} missing (needed by the sidecar end-to-end test, which then skips)" >&2
  fi
fi
if [ ! -x "$venv/bin/python" ]; then
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian splits venv/ensurepip out of python3.
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      rm -rf "$venv"
      python3 -m venv "$venv"
    else
      echo "cannot create a venv: install python3-venv" >&2
      exit 1
    fi
  fi
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "anthropic>=0.40" "openai>=1.50"

# Validators of the deployment files (deploy/, tests in crates/maskgate/tests/cli.rs, module deploy), each only when
# missing: `docker-compose config` (Debian's docker-compose, v1: validates the compose file without a daemon),
# kubernetes-validate (the Kubernetes JSON schemas, into the venv), and promtool (alert rules and PromQL; taken out of
# Debian's prometheus package into the venv's bin/, so that no Prometheus service is installed or started).
if ! command -v docker-compose >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing docker-compose (apt)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null 2>&1 \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null; }
  else
    echo "note: docker-compose missing (the compose check fails under CI)" >&2
  fi
fi
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "kubernetes-validate>=1.30"
fi
if [ ! -x "$venv/bin/promtool" ]; then
  if command -v apt-get >/dev/null 2>&1; then
    tmp="$(mktemp -d)"
    ( cd "$tmp" && { apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus >/dev/null 2>&1; }; } \
      && dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool ) \
      && install -m 0755 "$tmp/usr/bin/promtool" "$venv/bin/promtool" \
      || echo "note: could not get promtool (the alert-rule check fails under CI)" >&2
    rm -rf "$tmp"
  else
    echo "note: promtool missing (no apt-get)" >&2
  fi
fi
"$venv/bin/python" -c 'import anthropic, openai; print("sdk venv ready:", "anthropic", anthropic.__version__, "openai", openai.__version__)'
# The official Node `openai` SDK (and undici, for its explicit-proxy workaround) for the sidecar's end-to-end test,
# into <repo>/.node-sdk (or $MASKGATE_NODE_SDK). Skipped with a note when node/npm are missing.
node_sdk="${MASKGATE_NODE_SDK:-$repo/.node-sdk}"
# openai@6 and undici@7 need Node >= 20.18 (the test skips its Node part without it).
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
   && node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a==20&&b>=18)?0:1)'; then
  mkdir -p "$node_sdk"
  npm install --prefix "$node_sdk" --no-audit --no-fund --silent "openai@6" "undici@7" >/dev/null
  node -e 'const v=(p)=>require(process.argv[1]+"/node_modules/"+p+"/package.json").version; console.log("node sdk ready: openai", v("openai"), "undici", v("undici"))' "$node_sdk"
else
  echo "note: no node/npm >= 20.18: the Node SDK part of the sidecar end-to-end test is skipped" >&2
fi
