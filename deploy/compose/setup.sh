#!/bin/sh
# One-shot set-up of the compose topology, run as root by the `setup` service before anything else. Idempotent:
# what exists is kept (a CA the app already trusts, the vault key its mappings are encrypted with).
#
#   /run/maskgate/sidecar  (sidecar only)  ca.key (0600), ca.crt, sidecar-token      owner 1337
#   /run/maskgate/gateway  (gateway only)  vault.key (0600), sidecar-token             owner 1337
#   /run/maskgate/trust    (app, read-only) ca.crt, bundle.pem (system roots + CA), env.sh
set -eu
# MASKGATE_SETUP_ROOT: a prefix for the three directories (the test suite runs this script in a temporary one).
root="${MASKGATE_SETUP_ROOT:-}"
side="$root/run/maskgate/sidecar" gw="$root/run/maskgate/gateway" trust="$root/run/maskgate/trust"
mkdir -p "$side" "$gw" "$trust"
umask 077

[ -f "$side/ca.key" ] || maskgate ca init --dir "$side"

# 64 hex characters = a 256-bit key; od/tr because the slim image has no openssl.
[ -s "$gw/vault.key" ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$gw/vault.key"
if [ ! -s "$side/sidecar-token" ]; then
  head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$side/sidecar-token"
fi
cp "$side/sidecar-token" "$gw/sidecar-token"

# The app trusts the CA through the variables `maskgate ca env` prints; it never sees ca.key.
umask 022
cp "$side/ca.crt" "$trust/ca.crt"
maskgate ca env --dir "$trust" > "$trust/env.sh"

chmod 0700 "$side" "$gw"
# The gateway and the sidecar run as UID 1337 (the image's user); only root can hand the files over.
if [ "$(id -u)" = 0 ]; then chown -R 1337:1337 "$side" "$gw"; fi
chmod 0755 "$trust"
echo "setup done:"
cat "$trust/env.sh"
