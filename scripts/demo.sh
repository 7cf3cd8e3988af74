#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The main job on a local default, from a fresh Debian 12 machine: installs
# and builds, then runs the server transport in front of an echo stand-in for
# tor's ORPort and the client transport exactly as tor launches it (managed
# mode), and moves data through the client's SOCKS port in binary and base64
# mode, printing the figures. Everything is on 127.0.0.1 and stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

./scripts/install-deps.sh
if [ -f _build/build.ninja ]; then meson setup --reconfigure _build >/dev/null; else meson setup _build >/dev/null; fi
ninja -C _build src/tor-websocket-proxy >/dev/null
bin=$root/_build/src/tor-websocket-proxy
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

python3 scripts/echo-server.py > "$work/echo.port" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/echo.port" ] && break; sleep 0.1; done
echo_port=$(cat "$work/echo.port")

"$bin" --server --orport "127.0.0.1:$echo_port" --listen 127.0.0.1:0 > "$work/server.out" 2>"$work/server.err" &
pids+=($!)
for _ in $(seq 50); do grep -q listening "$work/server.out" 2>/dev/null && break; sleep 0.1; done
server=$(sed -n 's/^listening on //p' "$work/server.out")
echo "server transport: ws://$server/ relaying to an echo server on 127.0.0.1:$echo_port"

# The client, launched as tor launches it (pt-spec managed mode).
mkfifo "$work/stdin"
TOR_PT_MANAGED_TRANSPORT_VER=1 TOR_PT_CLIENT_TRANSPORTS=websocket \
TOR_PT_STATE_LOCATION="$work/pt_state/" TOR_PT_EXIT_ON_STDIN_CLOSE=1 \
  "$bin" --client --managed < "$work/stdin" > "$work/client.out" 2>"$work/client.err" &
pids+=($!)
exec 3>"$work/stdin"   # tor keeps the PT's stdin open; closing it stops the PT
for _ in $(seq 50); do grep -q 'CMETHODS DONE' "$work/client.out" 2>/dev/null && break; sleep 0.1; done
echo "client transport said:"
sed 's/^/  /' "$work/client.out"
socks=$(sed -n 's/^CMETHOD websocket socks5 127.0.0.1://p' "$work/client.out")

echo "moving data: tor-like SOCKS client -> client transport -> WebSocket -> server transport -> echo, and back"
python3 scripts/demo-traffic.py "$socks" "ws://$server/" "${DEMO_BYTES:-268435456}"
exec 3>&-
echo "done: both transports stop now"
