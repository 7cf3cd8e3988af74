#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# scripts/check-style.py: each rule flags a file that breaks it (file, line
# and rule named), a file in the house style passes, and the tree itself
# passes (the check CI runs).
set -u
srcdir=$(cd "$(dirname "$0")/.." && pwd)
check="$srcdir/scripts/check-style.py"
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

good_c='/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-example"

#include "config.h"

#include <glib.h>

/* A comment may say if(x) { and gchar freely. */
static int
example (const char *text)
{
  g_autoptr(GString) out = g_string_new ("f(x) {");
  g_autofree char *copy = g_strdup (text);

  if (copy == NULL)
    {
      return -1;
    }
  else
    return (int) sizeof (out) + _("n");
}
'

# $1: name, $2: path in the tree, $3: expected "LINE: RULE", $4: content.
expect_finding() {
  rm -rf "$tmp/tree"
  mkdir -p "$tmp/tree/$(dirname "$2")"
  printf '%s' "$4" >"$tmp/tree/$2"
  if python3 "$check" --root "$tmp/tree" "$2" >"$tmp/out" 2>&1; then
    not_ok "$1: passed, expected $3"
  elif grep -q "^$2:$3:" "$tmp/out"; then
    ok "$1"
  else
    not_ok "$1: expected $2:$3"
  fi
}

rm -rf "$tmp/tree"
mkdir -p "$tmp/tree/src"
printf '%s' "$good_c" >"$tmp/tree/src/good.c"
if python3 "$check" --root "$tmp/tree" src/good.c >"$tmp/out" 2>&1; then
  ok "a file in the house style passes"
else
  not_ok "a file in the house style passes"
fi

expect_finding "call without a space" src/a.c "13: call-paren" \
  "${good_c/g_strdup (text)/g_strdup(text)}"
expect_finding "keyword without a space" src/a.c "15: call-paren" \
  "${good_c/if (copy/if(copy}"
expect_finding "g_autoptr with a space" src/a.c "12: autoptr" \
  "${good_c/g_autoptr(GString)/g_autoptr (GString)}"
expect_finding "brace at the end of a line" tests/a.c "15: brace" \
  "${good_c/if (copy == NULL)/if (copy == NULL) \{}"
expect_finding "else after a brace" tests/a.c "18: brace" \
  "${good_c/    \}
  else/    \} else}"
expect_finding "gchar" tests/a.c "10: glib-types" \
  "${good_c/const char \*text/const gchar *text}"
expect_finding "config.h not the first include" src/a.c "4: log-domain" \
  "${good_c/\#include \"config.h\"/#include <stdio.h>}"
expect_finding "no log domain first" src/a.c "2: log-domain" \
  "${good_c/\#define G_LOG_DOMAIN \"twp-example\"/#include <stdio.h>}"
expect_finding "no SPDX" scripts/a.sh "1: spdx" $'#!/bin/sh\necho hi\n'
expect_finding "tab" scripts/a.py "3: whitespace" $'# SPDX-License-Identifier: BSD-3-Clause\nif x:\n\tpass\n'
expect_finding "trailing blank" ui/a.ui "2: whitespace" $'<a>\n<b/> \n</a>\n'
expect_finding "no final newline" data/a.xml "1: whitespace" '<a/>'
expect_finding "carriage return" README.md "1: whitespace" $'hello\r\n'

# The tree as committed (this is the check .ci/run makes).
if python3 "$check" --root "$srcdir" >"$tmp/out" 2>&1; then
  ok "the tree follows the house style"
elif ! git -C "$srcdir" rev-parse --git-dir >/dev/null 2>&1; then
  # A release tarball has no git to list its files: say so, do not pass.
  not_ok "the tree follows the house style (not a git checkout)"
else
  not_ok "the tree follows the house style"
fi

echo "1..$n"
exit $failed
