#!/usr/bin/env bash
# Installs the Debian packages turnkey needs to build and test, only when missing.
# Usage: scripts/deps.sh build|test
set -euo pipefail
want=(build-essential pkg-config libmicrohttpd-dev libjansson-dev libsqlite3-dev libpq-dev libssl-dev zlib1g-dev libcurl4-openssl-dev)
if [ "${1:-build}" = test ]; then
  want+=(clang libclang-rt-14-dev nodejs npm coturn sqlite3 openssl chromium nftables iproute2 clang-format postgresql prometheus)
fi
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# node/npm may come from elsewhere than Debian's packages: accept them when present.
if command -v node >/dev/null && command -v npm >/dev/null; then
  tmp=(); for p in "${missing[@]}"; do case $p in nodejs|npm) ;; *) tmp+=("$p");; esac; done
  missing=("${tmp[@]}")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
