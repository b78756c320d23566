#!/usr/bin/env bash
# Creates the Python venv with the official LLM SDKs used by the gateway's SDK tests
# (crates/gateway/tests/gateway/sdk.rs). Idempotent. Usage: scripts/setup-test-env.sh [VENV_DIR]
# Default VENV_DIR: <repo>/.venv-sdk (the tests look there, or in $MASKGATE_SDK_VENV).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-${MASKGATE_SDK_VENV:-$repo/.venv-sdk}}"
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
"$venv/bin/python" -c 'import anthropic, openai; print("sdk venv ready:", "anthropic", anthropic.__version__, "openai", openai.__version__)'
