#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The main job on a local default, from a fresh Debian 12 machine: installs
# and builds, then runs real tor through our transport. A private Tor
# network on 127.0.0.1 (directory authority, relays, a bridge running our
# server transport behind the Extended ORPort, a client running our client
# transport, both launched by tor in managed mode) bootstraps, a random file
# is fetched through the client's SOCKS port with its size, time and sha256,
# and the SOCKS port stays up for you to try until Ctrl-C. Every process is
# stopped by PID on exit; nothing binds anything but 127.0.0.1.
#   DEMO_NO_WAIT=1   do not wait for Ctrl-C (non-interactive runs)
#   DEMO_MODE=binary|base64|wss   DEMO_BYTES=N   (see tests/tor/demo.py)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

./scripts/install-deps.sh
if [ -f _build/build.ninja ]; then meson setup --reconfigure _build >/dev/null; else meson setup _build >/dev/null; fi
ninja -C _build src/tor-websocket-proxy >/dev/null
bin=$root/_build/src/tor-websocket-proxy

exec python3 tests/tor/demo.py --binary "$bin" --logdir "$root/_build/tor-logs"
