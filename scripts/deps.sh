#!/usr/bin/env bash
# Installs the Debian packages Salvo needs to build, test and run its demo.
# Idempotent: installs only what is missing. Never starts system services.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  liburing-dev libssl-dev libhiredis-dev libjansson-dev libc-ares-dev
  libmicrohttpd-dev libcmocka-dev
  redis-server postfix dnsmasq-base haproxy openssl
  python3 python3-aiosmtpd python3-redis python3-pytest
  iproute2 procps
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

echo "salvo: installing Debian packages: ${missing[*]}" >&2
# Block service starts during install: some packages would listen beyond loopback.
had_policy=0
[ -e /usr/sbin/policy-rc.d ] && had_policy=1
if [ $had_policy -eq 0 ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
fi
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[ $had_policy -eq 0 ] && $SUDO rm -f /usr/sbin/policy-rc.d
# Make sure nothing we installed was left running as a service.
for svc in redis-server postfix haproxy; do
  pkill -x "$svc" 2>/dev/null || true
done
pkill -f '/usr/lib/postfix/sbin/master' 2>/dev/null || true
exit 0
