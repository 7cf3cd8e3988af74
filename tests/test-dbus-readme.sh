#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Runs the ```sh blocks of README.md's "Scripting over D-Bus" section
# verbatim against a live transport, on the private bus of dbus-run-session.
# Blocks, in order: find the name, read the state, switch the frame mode,
# monitor. TAP output.
set -u

readme=${TWP_README:?}
binary=${TWP_BINARY:?}
tmp=$(mktemp -d)
n=0
failed=0
pids=()

cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=1; echo "not ok $n - $1"; }
check() { if eval "$2"; then ok "$1"; else not_ok "$1"; fi; }

echo "1..9"

# The section's code blocks, one file each.
awk -v dir="$tmp" '
  /^## / { in_section = ($0 == "## Scripting over D-Bus") }
  in_section && /^```sh$/ { block++; inside = 1; next }
  in_section && inside && /^```$/ { inside = 0; next }
  in_section && inside { print > (dir "/block" block ".sh") }
' "$readme"
blocks=$(ls "$tmp"/block*.sh 2>/dev/null | wc -l)
check "the section has 4 sh blocks (found $blocks)" '[ "$blocks" -eq 4 ]'

"$binary" --client --listen 127.0.0.1:0 >"$tmp/transport.out" 2>"$tmp/transport.err" &
transport=$!
pids+=("$transport")
for _ in $(seq 100); do
  gdbus call --session --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus \
    --method org.freedesktop.DBus.NameHasOwner "io.github.TorWebSocketProxy1.instance$transport" \
    2>/dev/null | grep -q true && break
  sleep 0.1
done

# Block 1 defines $name: run it in this shell.
# shellcheck disable=SC1091
source "$tmp/block1.sh" >"$tmp/out1" 2>&1
check "block 1 finds the transport's name ($name)" '[ "${name:-}" = "io.github.TorWebSocketProxy1.instance$transport" ]'
check "block 1 introspects the Transport and ObjectManager interfaces" \
  'grep -q "interface io.github.TorWebSocketProxy1.Transport" "$tmp/out1" && grep -q "interface org.freedesktop.DBus.ObjectManager" "$tmp/out1"'
export name

bash -e "$tmp/block2.sh" >"$tmp/out2" 2>&1
check "block 2 reads State (ready), the managed objects and a report" \
  'grep -q "^(<uint32 20>,)$" "$tmp/out2" && grep -q "/io/github/TorWebSocketProxy1/Transport" "$tmp/out2" && grep -q "report: redacted" "$tmp/out2"'

bash -e "$tmp/block4.sh" >"$tmp/out4" 2>&1 &
monitor=$!
pids+=("$monitor")
sleep 1

bash -e "$tmp/block3.sh" >"$tmp/out3" 2>&1
rc3=$?
check "block 3 runs (status $rc3)" '[ "$rc3" -eq 0 ]'
check "FrameMode is now base64" \
  'gdbus call --session --dest "$name" --object-path /io/github/TorWebSocketProxy1/Transport --method org.freedesktop.DBus.Properties.Get io.github.TorWebSocketProxy1.Transport FrameMode | grep -q base64'

for _ in $(seq 50); do
  grep -q "'FrameMode': <'base64'>" "$tmp/out4" && break
  sleep 0.1
done
check "block 4 shows the change (PropertiesChanged)" "grep -q \"'FrameMode': <'base64'>\" \"\$tmp/out4\""
check "block 4 shows the event" 'grep -q "Event" "$tmp/out4"'

kill "$transport"
wait "$transport"
status=$?
check "the transport exits cleanly (status $status)" '[ "$status" -eq 0 ]'

if [ "$failed" -ne 0 ]; then
  for f in "$tmp"/out* "$tmp"/transport.err; do
    echo "# --- $f"; sed 's/^/# /' "$f"
  done
fi
exit "$failed"
