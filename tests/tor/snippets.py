# SPDX-License-Identifier: BSD-3-Clause
"""Every torrc snippet the project shows, extracted from where users read
it, and rewritten to run on the private network of test-tor-network.py.

Sources: README.md's code blocks, the man pages' .nf blocks and bold
plugin lines, `--help`, and
the status app's lines (tests/twp-print-torrc, built from the same C as
the app). A snippet is "client" when it has a ClientTransportPlugin line,
"server" with a ServerTransportPlugin line, "tor-browser" when its plugin
line starts with '+' (the line for Tor Browser's torrc).

Stdlib only.
"""

import os
import re
import subprocess

PLUGIN_RE = re.compile(r"^(\+?)(Client|Server)TransportPlugin\s+(\S+)\s+exec\s+(\S+)(.*)$")
WANT_ARGS = {"Client": ["--client", "--managed"], "Server": ["--server", "--managed"]}


class SnippetError(Exception):
    """A snippet that cannot work as shown."""


class Snippet:
    def __init__(self, source, lines):
        self.source = source
        self.lines = [l.strip() for l in lines if l.strip()]
        self.kind = None
        for line in self.lines:
            m = PLUGIN_RE.match(line)
            if m:
                self.kind = ("tor-browser" if m.group(1) else
                             "client" if m.group(2) == "Client" else "server")

    def check_plugin_lines(self):
        """The plugin line runs our binary from a libexec directory with
        exactly the role and --managed; raises SnippetError otherwise."""
        found = False
        for line in self.lines:
            m = PLUGIN_RE.match(line)
            if not m:
                continue
            found = True
            if m.group(3) != "websocket":
                raise SnippetError("%s: transport %r, not websocket" % (self.source, m.group(3)))
            if not re.search(r"/libexec/tor-websocket-proxy$", m.group(4)):
                raise SnippetError("%s: runs %r, not <libexecdir>/tor-websocket-proxy"
                                   % (self.source, m.group(4)))
            if m.group(5).split() != WANT_ARGS[m.group(2)]:
                raise SnippetError("%s: %sTransportPlugin arguments %r, want %r"
                                   % (self.source, m.group(2), m.group(5).split(),
                                      WANT_ARGS[m.group(2)]))
        if not found:
            raise SnippetError("%s: no TransportPlugin line" % self.source)

    def rewritten(self, binary, ws_port=None):
        """The lines with our built binary for the installed one, and each
        Bridge line's address and url= pointed at the test bridge (scheme
        ws://, path kept). Everything else stays as shown."""
        out = []
        for line in self.lines:
            m = PLUGIN_RE.match(line)
            if m:
                line = "%s%sTransportPlugin %s exec %s%s" % (m.group(1), m.group(2), m.group(3),
                                                            binary, m.group(5))
            elif line.split()[0] == "Bridge" and ws_port is not None:
                words = line.split()
                words[2] = "127.0.0.1:%d" % ws_port
                for i, w in enumerate(words):
                    if w.startswith("url="):
                        path = re.sub(r"^wss?://[^/]*", "", w[4:]) or "/"
                        words[i] = "url=ws://127.0.0.1:%d%s" % (ws_port, path)
                line = " ".join(words)
            out.append(line)
        return out

    def url_path(self):
        for line in self.lines:
            for w in line.split():
                if w.startswith("url="):
                    return re.sub(r"^wss?://[^/]*", "", w[4:]) or "/"
        return None


def from_readme(path):
    text = open(path).read()
    snippets = []
    for i, m in enumerate(re.finditer(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S)):
        lines = m.group(1).splitlines()
        line_no = text[:m.start()].count("\n") + 1
        if any(PLUGIN_RE.match(l.strip()) for l in lines):
            snippets.append(Snippet("README.md:%d" % line_no, lines))
        # Shell that appends a torrc line: the line it appends.
        for l in lines:
            e = re.match(r"^echo '([^']*TransportPlugin [^']*)' >> torrc$", l.strip())
            if e:
                snippets.append(Snippet("README.md:%d (echo >> torrc)" % line_no, [e.group(1)]))
    return snippets


def from_man(path):
    text = open(path).read()
    snippets = []
    for m in re.finditer(r"^\.nf\n(.*?)^\.fi", text, re.M | re.S):
        body = [l.replace("\\-", "-") for l in m.group(1).splitlines() if not l.startswith(".")]
        # Client and server examples share one block, a blank line apart.
        para = []
        for line in body + [""]:
            if line.strip():
                para.append(line)
                continue
            if para and any(PLUGIN_RE.match(l.strip()) for l in para):
                snippets.append(Snippet("%s:.nf block" % os.path.basename(path), para))
            para = []
    # A line shown inline in bold.
    for line in text.splitlines():
        if line.startswith(".B ") and PLUGIN_RE.match(line[3:].replace("\\-", "-")):
            snippets.append(Snippet("%s:.B line" % os.path.basename(path), [line[3:].replace("\\-", "-")]))
    return snippets


def from_help(binary):
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30).stdout
    lines = out.splitlines()
    try:
        start = next(i for i, l in enumerate(lines) if l.strip() == "Run by tor:")
    except StopIteration:
        raise SnippetError("--help: no \"Run by tor:\" section")
    block = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        block.append(line)
    client = [l for l in block if "ServerTransport" not in l]
    server = [l for l in block if "ServerTransport" in l]
    return [Snippet("--help (client)", client), Snippet("--help (server)", server)]


def from_app(print_torrc):
    example = subprocess.run([print_torrc], capture_output=True, text=True, timeout=30, check=True).stdout
    tb = subprocess.run([print_torrc, "--tor-browser"], capture_output=True, text=True, timeout=30,
                        check=True).stdout
    return [Snippet("status app, empty state", example.splitlines()),
            Snippet("status app, Use with Tor Browser", tb.splitlines())]


def collect(srcdir, binary, print_torrc):
    """Every snippet, in a stable order."""
    snippets = from_readme(os.path.join(srcdir, "README.md"))
    snippets += from_man(os.path.join(srcdir, "data", "tor-websocket-proxy.1"))
    snippets += from_man(os.path.join(srcdir, "data", "tor-websocket-status.1"))
    snippets += from_help(binary)
    snippets += from_app(print_torrc)
    return snippets
