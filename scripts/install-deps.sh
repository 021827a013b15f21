#!/usr/bin/env bash
# Install everything Tidings' tests and benchmarks need on a fresh Debian machine (run as root).
# fail2ban: only its fail2ban-regex is used, to test the shipped filter (docs/fail2ban).
# chromium: the browser the web client tests drive through Playwright (no browser download).
# Idempotent: packages already present are skipped quickly. Services from these packages are not
# started (the tests start their own throwaway instances on high ports).
set -euo pipefail

PACKAGES=(postfix swaks postgresql dovecot-imapd dovecot-pop3d fetchmail getmail6 mutt isync offlineimap strace fail2ban chromium)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  # Keep package scripts from starting postfix, dovecot or postgresql on their standard ports.
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
  echo "postfix postfix/mailname string localhost" | $SUDO debconf-set-selections
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  [ "$created_policy" -eq 0 ] || $SUDO rm -f /usr/sbin/policy-rc.d
fi
