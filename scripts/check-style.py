#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Checks the house style (README "Style") on the files git tracks.

clang-format cannot express the GNOME layout this tree follows (aligned
parameter lists but unaligned locals, `g_autoptr(T)` without the space every
other call has, hand-wrapped macros), and reformatting with it would rewrite
thousands of lines for nothing. This checker holds exactly the rules the tree
keeps, with no exceptions list of files:

  spdx         an SPDX-License-Identifier in the first three lines
  whitespace   no tab, no trailing blank, no CR, one final newline
  call-paren   C: a space between a name and its "(" (calls, keywords),
               except gettext's _() family, g_auto*() and the preprocessor's
               defined()/__has_feature() and #define heads
  autoptr      C: g_autoptr(T), g_auto(T)... without a space, as in GLib
  brace        C: braces on their own line (no "if (x) {", no "} else")
  glib-types   C: char/int, not gchar/gint
  log-domain   C under src/: #define G_LOG_DOMAIN first, then "config.h"
               as the first include

Usage: check-style.py [--root DIR] [FILE...]; without files, every tracked
file of a checked kind. Prints FILE:LINE: RULE: message for each finding and
exits 1 if there is any.
"""

import argparse
import os
import re
import subprocess
import sys

C_SUFFIXES = (".c", ".h")
TEXT_SUFFIXES = C_SUFFIXES + (".py", ".sh", ".js", ".ui", ".xml", ".md",
                              ".desktop", ".in", ".css", ".txt", ".json")
SPDX_SUFFIXES = C_SUFFIXES + (".py", ".sh", ".js")
TEXT_NAMES = ("meson.build", "meson_options.txt", "run")

CALL_PAREN_ALLOWED = {
    "_", "N_", "C_", "NC_", "Q_",
    "g_autoptr", "g_auto", "g_autolist", "g_autoslist", "g_autoqueue",
    "defined", "__has_feature", "__has_include", "__attribute__",
}

failures = []


def report(path, line, rule, message):
    failures.append(f"{path}:{line}: {rule}: {message}")


def blank_out(match):
    return re.sub(r"[^\n]", " ", match.group(0))


def code_only(text):
    """The C text with comments and literals blanked, lines kept in place."""
    pattern = re.compile(
        r"/\*.*?\*/"                       # block comment
        r"|//[^\n]*"                       # line comment
        r"|\"(?:\\.|[^\"\\\n])*\""         # string literal
        r"|'(?:\\.|[^'\\\n])*'",           # character literal
        re.S)

    def replace(match):
        token = match.group(0)
        if token[0] in "\"'":
            return token[0] + " " * (len(token) - 2) + token[0]
        return blank_out(match)

    return pattern.sub(replace, text)


def check_text(path, text):
    if "\r" in text:
        report(path, text[:text.index("\r")].count("\n") + 1, "whitespace",
               "carriage return (use LF line ends)")
    lines = text.split("\n")
    for number, line in enumerate(lines, 1):
        if "\t" in line and not path.endswith(("Makefile", ".mk")):
            report(path, number, "whitespace", "tab character")
        if line.rstrip(" \t\r") != line.rstrip("\r"):
            report(path, number, "whitespace", "trailing white space")
    if text and not text.endswith("\n"):
        report(path, len(lines), "whitespace", "no newline at the end of the file")
    elif text.endswith("\n\n"):
        report(path, len(lines) - 1, "whitespace", "blank line at the end of the file")


def check_spdx(path, text):
    if "SPDX-License-Identifier:" not in "\n".join(text.split("\n")[:3]):
        report(path, 1, "spdx", "no SPDX-License-Identifier in the first three lines")


def check_c(path, text):
    code = code_only(text)
    for number, line in enumerate(code.split("\n"), 1):
        stripped = line.strip()
        if stripped.startswith("#"):
            # "#define NAME(args)" must not have a space; the rest of a
            # directive is ordinary code.
            line = re.sub(r"^\s*#\s*define\s+\w+\(", "", line)
            line = re.sub(r"^\s*#\s*\w+", "", line)
        for match in re.finditer(r"\b([A-Za-z_]\w*)\(", line):
            if match.group(1) not in CALL_PAREN_ALLOWED:
                report(path, number, "call-paren",
                       f"no space between '{match.group(1)}' and '('")
        if re.search(r"\bg_auto(ptr|list|slist|queue)?\s+\(", line):
            report(path, number, "autoptr", "write g_autoptr(Type), without a space")
        if re.search(r"^\s*(if|for|while|switch|else|do)\b.*\{\s*$", line) or \
           re.search(r"\)\s*\{\s*$", line):
            report(path, number, "brace", "the '{' goes on a line of its own")
        if re.search(r"\}\s*else\b", line):
            report(path, number, "brace", "'else' goes on the line after '}'")
        for match in re.finditer(r"\b(gchar|gint)\b", line):
            report(path, number, "glib-types",
                   f"'{match.group(1)}': write {match.group(1)[1:]}")

    if path.startswith("src/") and path.endswith(".c"):
        # Directives found in the blanked text (not in comments), read
        # from the original (their strings were blanked).
        original = text.split("\n")
        directives = [(n, original[n - 1].strip())
                      for n, l in enumerate(code.split("\n"), 1)
                      if l.strip().startswith("#")]
        if not directives or not directives[0][1].startswith("#define G_LOG_DOMAIN"):
            report(path, directives[0][0] if directives else 1, "log-domain",
                   "the first directive must be #define G_LOG_DOMAIN")
        includes = [(n, l) for n, l in directives if l.startswith("#include")]
        if includes and includes[0][1] != '#include "config.h"':
            report(path, includes[0][0], "log-domain",
                   'the first include must be "config.h"')


def kind_of(path):
    name = os.path.basename(path)
    if path.endswith(TEXT_SUFFIXES) or name in TEXT_NAMES:
        return "text"
    return None


def tracked_files(root):
    output = subprocess.run(["git", "-C", root, "ls-files", "-z"], check=True,
                            capture_output=True).stdout
    return [p for p in output.decode().split("\0") if p]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=os.path.join(os.path.dirname(__file__), ".."))
    parser.add_argument("files", nargs="*")
    args = parser.parse_args()
    root = os.path.abspath(args.root)

    paths = args.files or tracked_files(root)
    checked = 0
    for path in paths:
        relative = os.path.relpath(os.path.join(root, path), root)
        if kind_of(relative) is None or relative.startswith(("po/", "tests/fuzz/corpus/")):
            continue
        full = os.path.join(root, relative)
        if os.path.islink(full) or not os.path.isfile(full):
            continue
        with open(full, encoding="utf-8", errors="replace", newline="") as handle:
            text = handle.read()
        checked += 1
        check_text(relative, text)
        if relative.endswith(SPDX_SUFFIXES) or os.path.basename(relative) == "meson.build":
            check_spdx(relative, text)
        if relative.endswith(C_SUFFIXES):
            check_c(relative, text)

    for line in failures:
        print(line)
    print(f"check-style: {checked} files, {len(failures)} findings", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
