#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Installs every Debian 12 package that building and testing need.
# Idempotent: installs only what is missing. Never starts a system service
# (tor, nginx...): tests start their own instances on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

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
  # fault suite: packet loss and black holes in a network namespace
  nftables iproute2
  # the house style check (suite scripts) lists the files git tracks
  git
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

# Node.js runs the browser and ws tests. The oldest major version they
# need is stated once, as "engines" in tests/js/package.json; Debian 12's
# own nodejs (18) satisfies it and is installed where the machine has no
# node. A node found on the PATH is checked here, not deep inside a suite.
node_json=tests/js/package.json
node_need=$(sed -n 's/^ *"node": *">= *\([0-9][0-9]*\)".*/\1/p' "$node_json")
if [ -z "$node_need" ]; then
  echo "install-deps: no \"engines\": {\"node\": \">=N\"} in $node_json" >&2
  exit 1
fi

node_major() {
  # "v18.20.4" -> 18
  local v
  v=$(node --version 2>/dev/null) || return 1
  v=${v#v}
  echo "${v%%.*}"
}

# Whether PATH's node is Debian's nodejs package (apt can upgrade it and
# Debian's npm goes with it), rather than one installed some other way.
node_from_debian() {
  local file
  file=$(readlink -f "$(command -v node)")
  dpkg-query -S "$file" 2>/dev/null | grep -q '^nodejs:'
}

# The major version of nodejs apt would install, empty if none.
node_candidate() {
  apt-cache policy nodejs 2>/dev/null | sed -n 's/^ *Candidate: *\([0-9][0-9]*\)\..*/\1/p'
}

if command -v node >/dev/null 2>&1; then
  node_found=$(node --version 2>/dev/null || echo unknown)
  found_major=$(node_major || echo 0)
  if ! [[ $found_major =~ ^[0-9]+$ ]] || [ "$found_major" -lt "$node_need" ]; then
    echo "install-deps: node $node_found found at $(command -v node), the tests need Node.js >= $node_need ($node_json)." >&2
    if ! node_from_debian; then
      echo "install-deps: it is not from the nodejs package, so this script leaves it alone: remove it or put a node >= $node_need first on PATH (Debian 12's nodejs package is 18)." >&2
      exit 1
    fi
    candidate=$(node_candidate)
    if [ -z "$candidate" ] || [ "$candidate" -lt "$node_need" ]; then
      echo "install-deps: apt offers nodejs ${candidate:-(none)}, older too: install Node.js >= $node_need first." >&2
      exit 1
    fi
    echo "install-deps: upgrading the nodejs package to $candidate."
    upgrade_node=1
    # Another vendor's nodejs carries its own npm, which Debian's conflicts with.
    command -v npm >/dev/null 2>&1 || packages+=(npm)
  elif ! command -v npm >/dev/null 2>&1; then
    if node_from_debian; then
      packages+=(npm)
    else
      echo "install-deps: node $node_found at $(command -v node) comes without npm, which installs the tests' packages; install the npm that goes with that node (Debian's npm would bring Debian's nodejs)." >&2
      exit 1
    fi
  fi
else
  candidate=$(node_candidate)
  # Known before a long install, not after it.
  if [ -n "$candidate" ] && [ "$candidate" -lt "$node_need" ]; then
    echo "install-deps: no node here and apt offers nodejs $candidate, the tests need Node.js >= $node_need ($node_json): install a newer one first." >&2
    exit 1
  fi
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ "${upgrade_node:-0}" -eq 1 ]; then
  missing+=(nodejs)
fi

check_node() {
  # After any install: the node on PATH is the one meson and the suites run.
  local major
  major=$(node_major || echo 0)
  if [ "$major" -lt "$node_need" ]; then
    echo "install-deps: node $(node --version 2>/dev/null || echo missing) after installing, the tests need Node.js >= $node_need ($node_json)" >&2
    exit 1
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "install-deps: npm missing next to node $(node --version)" >&2
    exit 1
  fi
}

install_npm() {
  # npm packages for the ws tests, pinned by the lock file.
  local dir=tests/js
  [ -f "$dir/package.json" ] || return 0
  check_node
  # npm records what it installed in node_modules/.package-lock.json: a
  # missing or older record means an absent or partial install.
  local record="$dir/node_modules/.package-lock.json"
  if [ ! -f "$record" ] || [ "$dir/package-lock.json" -nt "$record" ]; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present, node $(node --version) (tests need >= $node_need)"
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
# Refresh the package lists when they are missing, older than a day, or
# older than the sources they come from (a newly added security entry, as on
# a machine just installed from a minimal image, has no list yet).
lists_current() {
  local newest
  newest=$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -printf '%T@\n' 2>/dev/null | sort -n | tail -n 1)
  newest=${newest%.*}
  [ -n "$newest" ] && [ "$newest" -ge $(($(date +%s) - 86400)) ] || return 1
  [ -z "$(find /etc/apt/sources.list /etc/apt/sources.list.d -maxdepth 1 -newermt "@$newest" 2>/dev/null | head -n 1)" ]
}
if ! lists_current; then
  $SUDO apt-get update -q
fi
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
install_npm
