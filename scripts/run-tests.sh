#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The whole test suite, from a fresh Debian 12 machine: installs what is
# missing, builds with gcc and runs every suite, then builds with clang under
# AddressSanitizer + UndefinedBehaviorSanitizer and runs the suites whose
# processes it can check (unit, integration, fuzz, dbus, ws, browser) again.
# Prints "N passed, N failed" last.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

./scripts/install-deps.sh

declare -i passed=0 failed=0
status=0

count_results() {
  # meson's machine-readable log: one JSON object per test (testlog-SETUP.json
  # for a test setup).
  local log=$1/meson-logs/${2:-testlog}.json
  [ -f "$log" ] || return 0
  read -r p f < <(python3 - "$log" <<'PY'
import json, sys
p = f = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"):
        p += 1
    elif r != "SKIP":
        f += 1
print(p, f)
PY
)
  passed+=p
  failed+=f
}

configure() {
  local dir=$1; shift
  if [ -f "$dir/build.ninja" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@" >/dev/null
  fi
}

echo "== gcc build, all suites"
CC=gcc configure "$root/_build" -Dwerror=true
ninja -C "$root/_build"
meson test -C "$root/_build" --print-errorlogs --num-processes 2 || status=1
count_results "$root/_build"

echo "== clang build with ASan + UBSan: unit, integration, fuzz, dbus, ws, browser"
CC=clang configure "$root/_build-asan" -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false -Dfuzzing=true
ninja -C "$root/_build-asan"
meson test -C "$root/_build-asan" --setup=asan --print-errorlogs --num-processes 2 \
  --suite unit --suite integration --suite fuzz --suite dbus --suite ws --suite browser || status=1
count_results "$root/_build-asan" testlog-asan

echo "${passed} passed, ${failed} failed"
exit $status
