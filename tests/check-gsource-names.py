#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# Suite data: every GSource created under src/ is named (house style), so
# that a profiler or a debugger shows what a main loop is running. A
# creation must be followed within a few lines by g_source_set_static_name,
# g_source_set_name or g_source_set_name_by_id. TAP output.
# Usage: check-gsource-names.py SOURCE_ROOT
import os
import re
import sys

# Calls that create a source: the g_*_add* convenience functions return an
# id, the *_source_new* and *_create_source functions a GSource.
CREATE_RE = re.compile(r'\b(?:'
                       r'g_(?:timeout|idle)_add(?:_full|_seconds|_seconds_full|_once)?'
                       r'|g_(?:unix_signal|child_watch|unix_fd)_add(?:_full)?'
                       r'|g_io_add_watch(?:_full)?'
                       r'|g_source_new'
                       r'|g_\w+_source_new(?:_full|_seconds)?'
                       r'|g_(?:socket|io|pollable_input_stream|pollable_output_stream|datagram_based)'
                       r'_create_(?:source|watch)'
                       r')\s*\(')
NAME_RE = re.compile(r'\bg_source_set_(?:static_)?name(?:_by_id)?\s*\(')
# The name comes at most this many lines after the creation starts.
WINDOW = 6


def unnamed(lines):
    """1-based line numbers of creations with no name nearby."""
    found = []
    for i, line in enumerate(lines):
        code = line.split('//')[0]
        if code.lstrip().startswith(('*', '/*')):
            continue
        if CREATE_RE.search(code) and not any(NAME_RE.search(l) for l in lines[i:i + WINDOW + 1]):
            found.append(i + 1)
    return found


def main():
    root = sys.argv[1]
    checks = []

    # The detector itself, on a known bad and a known good snippet.
    bad = ['  g_timeout_add_seconds (2, tick_cb, self);', '  return;']
    good = ['  id = g_timeout_add_seconds (2, tick_cb, self);',
            '  g_source_set_name_by_id (id, "[twp] tick");']
    checks.append((unnamed(bad) == [1] and unnamed(good) == [],
                   'the check flags an unnamed source and passes a named one', []))

    n_sources = 0
    problems = []
    for directory, subdirs, files in os.walk(os.path.join(root, 'src')):
        for name in sorted(files):
            if not name.endswith('.c'):
                continue
            path = os.path.join(directory, name)
            with open(path, encoding='utf-8') as f:
                lines = f.read().split('\n')
            n_sources += sum(1 for l in lines if CREATE_RE.search(l.split('//')[0]))
            problems += [f'{os.path.relpath(path, root)}:{n}: unnamed GSource' for n in unnamed(lines)]
    checks.append((n_sources > 0, f'{n_sources} source creations found under src/', []))
    checks.append((not problems, 'every GSource under src/ is named', problems))

    print(f'1..{len(checks)}')
    failed = False
    for n, (ok, name, details) in enumerate(checks, 1):
        print(f'{"ok" if ok else "not ok"} {n} - {name}')
        for detail in details:
            print(f'# {detail}')
        failed = failed or not ok
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
