#!/usr/bin/env bash
# Installs the real TLS peers the interop tests use, where they are missing.
set -euo pipefail
need=()
command -v openssl >/dev/null || need+=(openssl)
command -v tshark >/dev/null || need+=(tshark)
command -v gnutls-cli >/dev/null || need+=(gnutls-bin)
command -v curl >/dev/null || need+=(curl)
# the shared session store two tlsmith servers resume through
command -v redis-server >/dev/null || need+=(redis-server)
# nmap's ssl-enum-ciphers: a second opinion on what `tlsmith probe` reports
command -v nmap >/dev/null || need+=(nmap)
command -v ip >/dev/null || need+=(iproute2)
command -v unshare >/dev/null || need+=(util-linux)
# headless Chromium (its BoringSSL sends GREASE and an X25519MLKEM768 key share); large
command -v chromium >/dev/null || need+=(chromium)
# certutil: puts our test CA into a throwaway NSS database that Chromium trusts
command -v certutil >/dev/null || need+=(libnss3-tools)
# nginx: a real HTTPS server for the httpx transport tests (run from a temp prefix)
command -v nginx >/dev/null || need+=(nginx)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "install-peers: not root and no sudo; missing: ${need[*]}" >&2
    [ "${CI:-}" = "true" ] && exit 1 || exit 0
  fi
fi
echo "install-peers: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections || true
$SUDO apt-get update -qq
# Debian's nginx package starts a service on port 80 unless told not to: forbid any
# service start during the install (policy-rc.d exit 101), then restore what was there.
policy=/usr/sbin/policy-rc.d
saved=""
if [ -e "$policy" ]; then saved="$(mktemp)"; $SUDO cp -p "$policy" "$saved"; fi
printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
$SUDO chmod 755 "$policy"
restore_policy() {
  if [ -n "$saved" ]; then $SUDO mv "$saved" "$policy"; else $SUDO rm -f "$policy"; fi
}
trap restore_policy EXIT
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Belt and braces: had a service start anyway, stop it so nothing listens on port 80.
if [[ " ${need[*]} " == *" nginx "* ]] && [ -e /run/nginx.pid ]; then
  $SUDO nginx -s stop 2>/dev/null || true
fi
