#!/usr/bin/env bash
# Creates the Python venv with the official LLM SDKs used by the gateway's SDK tests
# (crates/gateway/tests/gateway/sdk.rs). Idempotent. Usage: scripts/setup-test-env.sh [VENV_DIR]
# Default VENV_DIR: <repo>/.venv-sdk (the tests look there, or in $MASKGATE_SDK_VENV).
set -euo pipefail
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
if ! python3 -m venv --help >/dev/null 2>&1; then
  echo "python3 venv module missing: apt-get install -y python3-venv" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "anthropic>=0.40" "openai>=1.50"
"$venv/bin/python" -c 'import anthropic, openai; print("sdk venv ready:", "anthropic", anthropic.__version__, "openai", openai.__version__)'
