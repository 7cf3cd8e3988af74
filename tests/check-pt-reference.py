#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# Suite data: comments cite pluggable transport behaviour by id ("C13",
# "K5", "C9-C17") or by section ("PT-CHECKLIST 8.1", "section 9", "§8.2");
# docs/pt-reference.md must define each one, cite nothing that no comment
# cites, and name only files that exist. TAP output.
# Usage: check-pt-reference.py SOURCE_ROOT
import os
import re
import sys

ROOT = sys.argv[1]
DOC = os.path.join(ROOT, 'docs', 'pt-reference.md')
TREES = ('src', 'tests', 'scripts', 'data')
SKIP_DIRS = {'node_modules', 'corpus', 'screenshots', 'icons'}
C_LIKE = ('.c', '.h', '.js', '.css')
HASH_COMMENTS = ('.sh', '.py', '.build', '.txt', '.options')

# An item id, or a range of them: "C9-C17", "G4-G6". Not glued to a ':'
# (test-ws-frame.c's traces write control frames as "C9:<hex>").
ID_RE = re.compile(r'(?<![\w-])([BCGKLSX])(\d{1,2})(?:-([BCGKLSX]?)(\d{1,2}))?(?!\w|:\S)')
# Sections: "PT-CHECKLIST 2, 3.1, 4", "PT-CHECKLIST section 5", "§8.2".
SECTION_LIST_RE = re.compile(r'PT-CHECKLIST\s+(?:section\s+)?(\d+(?:\.\d+)?(?:\s*,\s*\d+(?:\.\d+)?)*)')
SECTION_SIGN_RE = re.compile(r'§(\d+(?:\.\d+)?)')
# Definitions in the reference: "- **C13**:" and "- **§8.2**:".
DEFINED_ID_RE = re.compile(r'^- \*\*([BCGKLSX]\d{1,2})\*\*:', re.M)
DEFINED_SECTION_RE = re.compile(r'^- \*\*§(\d+(?:\.\d+)?)\*\*:', re.M)
# File names the reference gives as places: `twp-socks.c`, `test-args.c`...
FILE_RE = re.compile(r'`([\w.-]+\.(?:c|h|py|sh))`')


def comments(path, text):
    """The comment text of a file (all of it for files without comments)."""
    if path.endswith(C_LIKE):
        return ' '.join(re.findall(r'/\*.*?\*/|//[^\n]*', text, re.S))
    base = os.path.basename(path)
    if path.endswith(HASH_COMMENTS) or base == 'meson.build' or '.' not in base:
        return ' '.join(re.findall(r'#[^\n]*', text))
    if path.endswith(('.xml', '.ui', '.in')):
        return ' '.join(re.findall(r'<!--.*?-->', text, re.S))
    return text


def cited_ids(text):
    ids = set()
    for letter, first, letter2, last in ID_RE.findall(text):
        if letter2 and letter2 != letter:
            continue
        if last:
            ids.update(f'{letter}{n}' for n in range(int(first), int(last) + 1))
        else:
            ids.add(f'{letter}{first}')
    return ids


def cited_sections(text):
    sections = set(SECTION_SIGN_RE.findall(text))
    for group in SECTION_LIST_RE.findall(text):
        sections.update(s.strip() for s in group.split(','))
    return sections


def source_files():
    for tree in TREES:
        for directory, subdirs, files in os.walk(os.path.join(ROOT, tree)):
            subdirs[:] = [d for d in subdirs if d not in SKIP_DIRS and not d.startswith('.')]
            for name in files:
                path = os.path.join(directory, name)
                # This script's own examples cite nothing.
                if os.path.relpath(path, ROOT) != os.path.join('tests', 'check-pt-reference.py'):
                    yield path


def main():
    with open(DOC, encoding='utf-8') as f:
        doc = f.read()
    defined_ids = set(DEFINED_ID_RE.findall(doc))
    defined_sections = set(DEFINED_SECTION_RE.findall(doc))

    ids = {}
    sections = {}
    basenames = set()
    for path in source_files():
        basenames.add(os.path.basename(path))
        try:
            with open(path, encoding='utf-8') as f:
                text = comments(path, f.read())
        except UnicodeDecodeError:
            continue
        where = os.path.relpath(path, ROOT)
        for item in cited_ids(text):
            ids.setdefault(item, []).append(where)
        for section in cited_sections(text):
            sections.setdefault(section, []).append(where)

    def key(item):
        return (item[0], int(item[1:]))

    checks = []
    # The parser must see what is there: if it found no id at all, every
    # other check would pass vacuously.
    checks.append((len(ids) >= 20 and len(defined_ids) >= 20,
                   f'{len(ids)} ids cited, {len(defined_ids)} defined', []))
    undefined = sorted(set(ids) - defined_ids, key=key)
    checks.append((not undefined, 'every cited id is defined in docs/pt-reference.md',
                   [f'{i} (cited in {", ".join(sorted(set(ids[i])))})' for i in undefined]))
    uncited = sorted(defined_ids - set(ids), key=key)
    checks.append((not uncited, 'every id docs/pt-reference.md defines is cited', uncited))
    undefined_sections = sorted(set(sections) - defined_sections)
    checks.append((not undefined_sections, 'every cited section is defined in docs/pt-reference.md',
                   [f'§{s} (cited in {", ".join(sorted(set(sections[s])))})' for s in undefined_sections]))
    missing_files = sorted(set(FILE_RE.findall(doc)) - basenames)
    checks.append((not missing_files, 'every file docs/pt-reference.md names exists', missing_files))

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
