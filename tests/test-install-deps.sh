#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# scripts/install-deps.sh checks node's version before anything else: a
# node older than tests/js/package.json's "engines" stops it at once with
# the version found and the version needed. Runs a copy of the script
# against a copy of package.json, with fake nodes first on PATH; every case
# ends before the script would install anything.
set -u
srcdir=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
failed=0

ok() {
  n=$((n + 1))
  echo "ok $n - $1"
}
not_ok() {
  n=$((n + 1))
  failed=1
  echo "not ok $n - $1"
  sed 's/^/# /' "$tmp/out"
}

# A project tree holding only the script and package.json ($1: engines).
tree() {
  rm -rf "$tmp/tree"
  mkdir -p "$tmp/tree/scripts" "$tmp/tree/tests/js"
  cp "$srcdir/scripts/install-deps.sh" "$tmp/tree/scripts/"
  sed "s/\"node\": *\"[^\"]*\"/\"node\": \"$1\"/" "$srcdir/tests/js/package.json" >"$tmp/tree/tests/js/package.json"
}

# A node on PATH that prints $1 for --version (not from any package).
fake_node() {
  mkdir -p "$tmp/bin"
  printf '#!/bin/sh\necho %s\n' "$1" >"$tmp/bin/node"
  chmod 755 "$tmp/bin/node"
}

# run NAME EXPECTED-STATUS PATTERN...: the script's status and output.
run() {
  local name=$1 want=$2 status=0
  shift 2
  PATH="$tmp/bin:$PATH" timeout 120 "$tmp/tree/scripts/install-deps.sh" >"$tmp/out" 2>&1 || status=$?
  if [ "$status" -ne "$want" ]; then
    echo "exit status $status, expected $want" >>"$tmp/out"
    not_ok "$name"
    return
  fi
  for pattern in "$@"; do
    if ! grep -qF -- "$pattern" "$tmp/out"; then
      echo "no \"$pattern\" in the output" >>"$tmp/out"
      not_ok "$name"
      return
    fi
  done
  if grep -q 'installing' "$tmp/out"; then
    not_ok "$name: nothing is installed before the check"
    return
  fi
  ok "$name"
}

grep -q '"node": ">=' "$srcdir/tests/js/package.json" &&
  ok 'tests/js/package.json states the node version as engines' ||
  { echo "no engines" >"$tmp/out"; not_ok 'tests/js/package.json states the node version as engines'; }

tree '>=18'
fake_node v16.20.2
run 'node 16 against >= 18: found and needed named, stops' 1 'v16.20.2' 'Node.js >= 18' 'leaves it alone'

fake_node 'not a version'
run 'node printing garbage: stops with what it printed' 1 'not a version' 'Node.js >= 18'

rm -f "$tmp/bin/node"
tree '>=999'
found=$(node --version)
run "node $found against >= 999: found and needed named, stops" 1 "$found" 'Node.js >= 999'

tree 'any'
fake_node v20.0.0
run 'engines without ">=N": stops and says so' 1 'engines'

echo "1..$n"
exit $failed
