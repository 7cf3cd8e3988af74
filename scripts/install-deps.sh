#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Installs every Debian 12 package that building and testing need.
# Idempotent: installs only what is missing. Never starts a system service
# (tor, nginx...): tests start their own instances on 127.0.0.1.
set -euo pipefail

packages=(
  # build
  gcc clang libclang-rt-14-dev meson ninja-build pkg-config
  libglib2.0-dev libglib2.0-dev-bin libsoup-3.0-dev glib-networking libgnutls28-dev
  # tests
  openssl socat python3 xxd procps
  # promtool checks the metrics exposition (suite integration)
  prometheus
  # real tor network (suite tor)
  tor
  # the AppArmor profile's parse check (suite data): apparmor_parser
  apparmor
  # browser, reverse proxy, other WebSocket implementations
  chromium nginx
  # benchmarks
  linux-perf strace valgrind
  # D-Bus
  dbus-daemon libglib2.0-bin
  # GTK status app
  libgtk-4-dev libadwaita-1-dev gettext desktop-file-utils appstream xvfb xauth
)

# Node.js (>= 18) runs the browser and ws tests; Debian 12's own is enough
# where the machine has none.
if ! command -v node >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

install_npm() {
  # npm packages for the browser and ws tests, pinned by the lock file.
  local dir=tests/js
  [ -f "$dir/package.json" ] || return 0
  # npm records what it installed in node_modules/.package-lock.json: a
  # missing or older record means an absent or partial install.
  local record="$dir/node_modules/.package-lock.json"
  if [ ! -f "$record" ] || [ "$dir/package-lock.json" -nt "$record" ]; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  install_npm
  exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
fi

echo "install-deps: installing ${missing[*]}"
# A policy-rc.d that forbids starting services keeps packages such as tor and
# nginx from launching a system instance during installation.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
  created_policy=1
fi
cleanup() {
  if [ "$created_policy" -eq 1 ]; then
    $SUDO rm -f "$policy"
  fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists when they are missing or older than a day.
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -n 1)" ]; then
  $SUDO apt-get update -q
fi
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
install_npm
