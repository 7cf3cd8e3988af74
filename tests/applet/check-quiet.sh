#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Runs a validator and fails on any output as well as on a non-zero exit:
# desktop-file-validate prints errors yet exits 0.
out=$("$@" 2>&1)
rc=$?
if [ -n "$out" ]; then
  printf '%s\n' "$out"
  echo "FAIL: $1 printed something" >&2
  exit 1
fi
exit $rc
