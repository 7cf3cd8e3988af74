#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Real tor, private network: our transport between a tor client and a bridge.

Starts a private Tor network on 127.0.0.1 (tor_network.py), then four
bridge/client pairs that share it, each pair using our transport the way
tor runs it (managed mode, ExtORPort auto on the bridge):

  binary   url=ws://127.0.0.1:<port>/
  base64   url=ws://127.0.0.1:<port>/ mode=base64
  wss      url=wss://localhost:<port>/, test CA made with openssl, bridge
           tls-cert=/tls-key= server transport options, client --ca-file
  http10   url=ws://127.0.0.1:<front>/, where a front in this script
           rewrites our server's 101 into the one the proposal's reference
           server (the Go websocket-server) writes: HTTP/1.0, Go's header
           case and order (issue 11 item 1)

For each: the client bootstraps to 100%, fetches a random file from a local
HTTP server through its SocksPort over a 3-hop circuit whose first hop is
the bridge (control port) with the right sha256, and the bridge's tor logged
the ExtORPort USERADDR and a client with transport 'websocket' (debug lines
that only the ExtORPort path produces).

Then every torrc snippet the project shows (snippets.py: README, man page,
--help, the status app): each runs our binary with --client/--server
--managed; each server snippet passes tor --verify-config; each distinct
client snippet, pointed at one more bridge, bootstraps with every circuit
starting at that bridge. And Tor Browser, played: a folder laid out as the
real one, the app's set-up step applied to it (refused while its tor runs),
tor started as Tor Browser starts it (--defaults-torrc, -f, DataDirectory,
control port with cookie, __OwningControllerProcess), the bridge given with
SETCONF UseBridges=1 Bridge=..., SAVECONF, bootstrap through our bridge
with Tor Browser's own transports kept, then the undo. TAP output.

Usage: test-tor-network.py [--logdir DIR]   (binary from $TWP_BINARY)
Logs are copied to DIR (default <build>/tests/tor-logs) when a test fails.
"""

import argparse
import hashlib
import os
import re
import select
import shutil
import subprocess
import socket
import sys
import threading
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tor_network as tn  # noqa: E402
import snippets as sn  # noqa: E402

BLOB_SIZE = 5 * 1024 * 1024
BOOTSTRAP_TIMEOUT = 90
RUNS = [
    # name, bridge args (format: port), server transport options, client TLS
    ("binary", ["url=ws://127.0.0.1:{port}/"], [], False),
    ("base64", ["url=ws://127.0.0.1:{port}/", "mode=base64"], [], False),
    ("wss", ["url=wss://localhost:{port}/"], ["tls-cert={cert}", "tls-key={key}"], True),
    ("http10", ["url=ws://127.0.0.1:{front}/"], [], False),
]
CHECKS_PER_RUN = 6
TOR_BROWSER_CHECKS = 6


class GoFront:
    """Answers each upgrade as the Go websocket-server does, then relays.

    Forwards the client's request to our server, takes the accept value (and
    the subprotocol, if any) from its answer and writes instead
    "HTTP/1.0 101 Switching Protocols" with Go's http.Header.Write() form:
    canonical case ("Sec-Websocket-Accept") and headers sorted by name.
    Then copies bytes both ways until either side closes."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.rewritten = 0
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.closed = True
        self.listener.close()

    @staticmethod
    def _read_head(sock):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                raise OSError("closed before the end of the HTTP head")
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        return head.decode("latin-1"), rest

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            up = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30)
            request, rest = self._read_head(conn)
            up.sendall(request.encode("latin-1") + b"\r\n\r\n" + rest)
            answer, early = self._read_head(up)
            lines = answer.split("\r\n")
            if not lines[0].startswith("HTTP/1.1 101 "):
                conn.sendall(answer.encode("latin-1") + b"\r\n\r\n" + early)
            else:
                fields = dict(line.split(":", 1) for line in lines[1:])
                fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
                headers = {"Connection": "Upgrade", "Upgrade": "websocket",
                           "Sec-Websocket-Accept": fields["sec-websocket-accept"]}
                if "sec-websocket-protocol" in fields:
                    headers["Sec-Websocket-Protocol"] = fields["sec-websocket-protocol"]
                go = "HTTP/1.0 101 Switching Protocols\r\n" + "".join(
                    "%s: %s\r\n" % (k, headers[k]) for k in sorted(headers)) + "\r\n"
                conn.sendall(go.encode("latin-1") + early)
                self.rewritten += 1
            conn.settimeout(None)
            up.settimeout(None)
            t = threading.Thread(target=self._pipe, args=(up, conn), daemon=True)
            t.start()
            self._pipe(conn, up)
            t.join()
        except (OSError, KeyError, ValueError):
            pass
        finally:
            conn.close()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class Tap:
    def __init__(self, planned):
        self.n = 0
        self.failed = 0
        print("1..%d" % planned, flush=True)

    def ok(self, cond, desc, diag=None):
        self.n += 1
        if not cond:
            self.failed += 1
        print("%sok %d - %s" % ("" if cond else "not ", self.n, desc), flush=True)
        if diag and not cond:
            self.diag(diag)
        return cond

    def diag(self, text):
        for line in str(text).splitlines():
            print("# " + line, flush=True)

    def skip_rest(self, planned, why):
        while self.n < planned:
            self.ok(False, "not run: %s" % why)


def ext_or_proof(bridge):
    """(ok, detail): the bridge's tor saw our connections arrive over the
    Extended ORPort, carrying TRANSPORT websocket (and USERADDR).

    Tor only logs these on the ExtORPort path: a transport that fell back to
    TOR_PT_ORPORT would give no USERADDR line and only "with transport
    '<no transport>'"; one that skipped TRANSPORT would give '<??>'.
    ('<no transport>' lines also come from the relays of the bridge's own
    reachability circuits, which reach its ORPort directly: not counted.)"""
    log = bridge.read_log("debug")
    useraddr = re.findall(r"Received USERADDR\.We rewrite our address from '[^']*' to '([^']*)'", log)
    seen = re.findall(r"Seen client from '[^']*' with transport '([^']*)'", log)
    wrong = [t for t in seen if t not in ("websocket", "<no transport>")]
    ok = bool(useraddr) and "websocket" in seen and not wrong
    return ok, "USERADDR lines: %d (%s), clients seen with transports: %s" % (
        len(useraddr), ", ".join(sorted(set(useraddr)))[:200], sorted(set(seen)) or "none")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--logdir", default=None)
    args = ap.parse_args()

    binary = os.environ.get("TWP_BINARY")
    logdir = args.logdir or os.path.join(os.environ.get("G_TEST_BUILDDIR", "."), "tor-logs")
    planned = 1 + CHECKS_PER_RUN * len(RUNS) + 1
    if not binary or not os.access(binary, os.X_OK):
        tap = Tap(planned)
        tap.skip_rest(planned, "TWP_BINARY not set or not executable: %r" % binary)
        return 1
    # Every snippet is known before the plan: a lost one fails the count.
    srcdir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    snips = sn.collect(srcdir, binary, os.environ.get("TWP_PRINT_TORRC", "twp-print-torrc"))
    distinct = distinct_clients(snips, binary)
    planned += (len(snips) + len([x for x in snips if x.kind == "server"]) + len(distinct)
                + TOR_BROWSER_CHECKS)
    tap = Tap(planned)
    if shutil.which("tor") is None or shutil.which("tor-gencert") is None:
        # scripts/install-deps.sh installs the tor package.
        tap.skip_rest(planned, "tor and tor-gencert are not installed")
        return 1

    tn.install_signal_handlers()
    t_start = time.monotonic()
    work = tempfile.mkdtemp(prefix="twp-tor-")
    blob = tn.BlobServer(BLOB_SIZE)
    net = tn.TorNetwork(work, binary, exit_ports=[blob.port], relays=3)
    status = 1
    try:
        status = run(tap, planned, net, blob, work, snips, distinct)
    except tn.Interrupted as e:
        tap.diag(str(e))
        status = 128 + e.signum
    except Exception as e:          # report, then clean up and keep the logs
        tap.diag("error: %r" % e)
        tap.skip_rest(planned, str(e))
        status = 1
    finally:
        net.stop()
        blob.close()
        if status != 0 or tap.failed:
            dest = os.path.join(logdir, time.strftime("%Y%m%d-%H%M%S"))
            try:
                net.collect_logs(dest)
                tap.diag("logs kept in " + dest)
            except OSError as e:
                tap.diag("could not keep logs: %s" % e)
        shutil.rmtree(work, ignore_errors=True)
    tap.diag("wall time: %.1f s" % (time.monotonic() - t_start))
    return status if status else (1 if tap.failed else 0)


def run(tap, planned, net, blob, work, snips, distinct):
    ca, cert, key = tn.make_test_ca(os.path.join(work, "tls"))
    check_snippets_static(tap, snips, net.binary, work)

    net.start()
    try:
        secs = net.wait_for_consensus(60)
        relays, exits = net.consensus_relays()
        tap.ok(True, "private network: consensus lists %d relays, %d exits (%.1f s)"
               % (relays, exits, secs))
    except tn.TorNetworkError as e:
        tap.ok(False, "private network: first consensus", e)
        tap.skip_rest(planned, "no consensus")
        return 1

    # Bridges and then clients of the three runs start together: they share
    # the network and only their own checks run one after the other.
    pairs = []
    for name, bargs, topts, tls in RUNS:
        bridge = net.add_bridge("bridge-" + name,
                                [o.format(cert=cert, key=key) for o in topts])
        pairs.append((name, bargs, tls, bridge))
    # One more bridge for the snippets, serving the path their url= names.
    paths = {x.url_path() for x in snips if x.kind == "client"} - {None}
    snip_bridge = net.add_bridge("bridge-snippets", ["path=" + p for p in sorted(paths)][:1])
    ready = {}
    for name, bargs, tls, bridge in pairs:
        try:
            ready[name] = net.wait_bridge_ready(bridge)
        except tn.TorNetworkError as e:
            ready[name] = e
    clients = {}
    fronts = {}
    for name, bargs, tls, bridge in pairs:
        if isinstance(ready[name], str):
            if any("{front}" in a for a in bargs):
                fronts[name] = GoFront(bridge.ports["websocket"])
            front_port = fronts[name].port if name in fronts else 0
            args = [a.format(port=bridge.ports["websocket"], front=front_port) for a in bargs]
            clients[name] = net.add_client("client-" + name, bridge, args,
                                           ["--ca-file", ca] if tls else [],
                                           pt_debug_log=True)

    snip_clients = []
    tor_browser = None
    try:
        port = net.wait_bridge_ready(snip_bridge) and snip_bridge.ports["websocket"]
        for i, (lines, sources) in enumerate(distinct):
            snip_clients.append((start_snippet_client(net, "client-snippet%d" % i, lines, port),
                                 sources))
        tor_browser = TorBrowserPlay(net, work, port)
        tor_browser.set_up_and_start(tap)
    except tn.TorNetworkError as e:
        tap.diag("snippet bridge: %s" % e)

    first_boot = None
    for name, bargs, tls, bridge in pairs:
        where = ready[name]
        expected = "127.0.0.1:%d" % bridge.ports["websocket"]
        if not tap.ok(where == expected,
                      "%s: bridge's tor registered server transport websocket at %s"
                      % (name, expected), "got: %s" % where):
            for _ in range(CHECKS_PER_RUN - 1):
                tap.ok(False, "%s: not run (bridge transport did not start)" % name)
            continue
        client = clients[name]
        try:
            secs = client.wait_bootstrapped(BOOTSTRAP_TIMEOUT)
            total = time.monotonic() - net.started_at
            first_boot = total if first_boot is None else min(first_boot, total)
            tap.ok(True, "%s: client Bootstrapped 100%% through the websocket bridge "
                   "(%.1f s after its start, %.1f s after the first tor)" % (name, secs, total))
        except tn.TorNetworkError as e:
            tap.ok(False, "%s: client Bootstrapped 100%%" % name,
                   "%s\n%s" % (e, "\n".join(client.read_log("notice").splitlines()[-15:])))
            for _ in range(CHECKS_PER_RUN - 2):
                tap.ok(False, "%s: not run (no bootstrap)" % name)
            continue

        check_mode(tap, name, client, bargs, fronts.get(name))

        target = "127.0.0.1:%d" % blob.port
        watcher = tn.StreamWatcher(client)
        try:
            body, secs = tn.socks_http_get(client.ports["socks"], "127.0.0.1", blob.port, "/blob")
            digest = hashlib.sha256(body).hexdigest()
            tap.ok(digest == blob.sha256 and len(body) == BLOB_SIZE,
                   "%s: %d bytes fetched through the SocksPort in %.2f s (%.1f MB/s), sha256 %s"
                   % (name, len(body), secs, len(body) / secs / 1e6,
                      "matches" if digest == blob.sha256 else "DIFFERS"),
                   "got %d bytes, sha256 %s, want %s" % (len(body), digest, blob.sha256))
        except (OSError, tn.TorNetworkError) as e:
            tap.ok(False, "%s: fetch through the SocksPort" % name, repr(e))
        time.sleep(0.3)     # the STREAM SUCCEEDED event may trail the data
        circ = watcher.circuit_for(target)
        watcher.close()
        path = tn.circuit_path(client, circ) if circ else None
        bridge_fp = bridge.fingerprint()
        relay_fps = {r.fingerprint() for r in net.relays + [net.authority]}
        tap.ok(path is not None and len(path) == 3 and path[0] == bridge_fp
               and set(path[1:]) <= relay_fps and len(set(path)) == 3,
               "%s: the stream used a 3-hop circuit whose first hop is the bridge" % name,
               "circuit %s path %s, bridge %s" % (circ, path, bridge_fp))

        ok, detail = ext_or_proof(bridge)
        tap.ok(ok, "%s: bridge's tor got the connection over the ExtORPort with "
               "transport websocket" % name, detail)

    if first_boot is not None:
        tap.diag("bootstrap: %.1f s from the first tor start to a client's Bootstrapped 100%%"
                 % first_boot)

    for client, sources in snip_clients:
        check_through_bridge(tap, client, snip_bridge, "client snippet of " + ", ".join(sources))
    for _ in range(len(distinct) - len(snip_clients)):
        tap.ok(False, "client snippet: not run (the snippet bridge did not start)")
    if tor_browser is not None:
        tor_browser.check(tap, snip_bridge)
    for front in fronts.values():
        front.close()
    net.stop()
    left = tn.leftover_processes()
    tap.ok(not left, "every tor and transport process stopped by PID", "still running: %s" % left)
    return 0


def distinct_clients(snips, binary):
    """[(rewritten lines, [sources])] of the client snippets, identical
    ones run once. The port is filled in later."""
    groups = {}
    for x in snips:
        if x.kind == "client":
            key = tuple(x.rewritten(binary, ws_port=0))
            groups.setdefault(key, []).append(x.source)
    return [(list(k), v) for k, v in groups.items()]


def check_snippets_static(tap, snips, binary, work):
    """Each snippet runs our binary as its role needs; clients use bridges;
    servers pass tor --verify-config."""
    app_tb = [x for x in snips if x.kind == "tor-browser" and x.source.startswith("status app")]
    for x in snips:
        try:
            x.check_plugin_lines()
            if x.kind == "tor-browser" and (not app_tb or x.rewritten(binary) != app_tb[0].rewritten(binary)):
                raise sn.SnippetError("%s: differs from the line the status app adds to Tor Browser's torrc"
                                      % x.source)
            if x.kind == "client" and "UseBridges 1" not in x.lines:
                raise sn.SnippetError("%s: no UseBridges 1 (tor would ignore the Bridge line)" % x.source)
            tap.ok(True, "%s (%s snippet): runs <libexecdir>/tor-websocket-proxy with the right arguments"
                   % (x.source, x.kind))
        except sn.SnippetError as e:
            tap.ok(False, "%s (%s snippet): runs our binary with the right arguments" % (x.source, x.kind), e)
    for i, x in enumerate(s for s in snips if s.kind == "server"):
        d = os.path.join(work, "verify-server%d" % i)
        os.makedirs(os.path.join(d, "data"), mode=0o700)
        with open(os.path.join(d, "torrc"), "w") as f:
            f.write("\n".join(x.rewritten(binary) + ["DataDirectory " + os.path.join(d, "data")]) + "\n")
        open(os.path.join(d, "empty"), "w").close()
        r = subprocess.run(["tor", "--verify-config", "--defaults-torrc", os.path.join(d, "empty"),
                            "-f", os.path.join(d, "torrc")],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        tap.ok(r.returncode == 0 and "Configuration was valid" in r.stdout,
               "%s (server snippet): tor --verify-config accepts it" % x.source,
               r.stdout[-2000:] + r.stderr[-500:])


def start_snippet_client(net, name, lines, port):
    node = tn.TorNode(net, name, "client")
    node.ports = {"socks": tn.free_port(), "control": tn.free_port()}
    shown = sn.Snippet(name, lines).rewritten(net.binary, ws_port=port)
    node.write_torrc(["SocksPort %s:%d" % (tn.LOOPBACK, node.ports["socks"]),
                      "ControlPort %s:%d" % (tn.LOOPBACK, node.ports["control"]),
                      "CookieAuthentication 1"] + shown)
    net.nodes.append(node)
    return node.start()


def first_hops(client):
    """First-hop fingerprints of the client's BUILT circuits."""
    (lines,) = client.control("GETINFO circuit-status")
    hops = []
    for line in lines:
        for prefix in ("250-circuit-status=", "250+circuit-status="):
            if line.startswith(prefix):
                line = line[len(prefix):]
        f = line.split()
        if len(f) >= 3 and f[1] == "BUILT":
            hops.append(f[2].split(",")[0].split("~")[0].split("=")[0].lstrip("$"))
    return hops


def check_through_bridge(tap, client, bridge, what):
    """Bootstrapped 100%, and every built circuit starts at our bridge (a
    snippet without UseBridges would bootstrap straight to the relays)."""
    try:
        secs = client.wait_bootstrapped(BOOTSTRAP_TIMEOUT)
        hops = first_hops(client)
        fp = bridge.fingerprint()
        # A Bridge line without a fingerprint: the first circuit names the
        # bridge by an all-zero digest until tor learns its identity.
        tap.ok(bool(hops) and fp in hops and set(hops) <= {fp, "0" * 40},
               "%s: Bootstrapped 100%% through the websocket bridge (%.1f s), %d circuits all via it"
               % (what, secs, len(hops)), "first hops %s, bridge %s" % (hops, fp))
    except tn.TorNetworkError as e:
        tap.ok(False, "%s: Bootstrapped 100%% through the websocket bridge" % what,
               "%s\n%s" % (e, "\n".join(client.read_log("notice").splitlines()[-15:])))


# Tor Browser's torrc-defaults ships its own transports (lyrebird,
# snowflake); ours must be added to them, not replace them.
TOR_BROWSER_DEFAULTS = [
    "AvoidDiskWrites 1",
    "CookieAuthentication 1",
    "DormantCanceledByStartup 1",
    "ClientTransportPlugin meek_lite,obfs2,obfs3,obfs4,scramblesuit,webtunnel exec "
    "./TorBrowser/Tor/PluggableTransports/lyrebird",
    "ClientTransportPlugin snowflake exec ./TorBrowser/Tor/PluggableTransports/snowflake-client",
]


class TorBrowserPlay:
    """A Tor Browser folder laid out as the real one, set up by the app's
    code (tests/twp-print-torrc --set-up), and its tor started the way Tor
    Browser starts it."""

    def __init__(self, net, work, port):
        self.net = net
        self.port = port
        self.root = os.path.join(work, "tb", "tor-browser")
        self.tor_dir = os.path.join(self.root, "Browser", "TorBrowser", "Data", "Tor")
        os.makedirs(self.tor_dir, mode=0o700)
        self.torrc = os.path.join(self.tor_dir, "torrc")
        self.defaults = os.path.join(self.tor_dir, "torrc-defaults")
        self.tool = os.environ.get("TWP_PRINT_TORRC", "twp-print-torrc")
        self.node = tn.TorNode(net, "client-tor-browser", "client")
        self.node.ports = {"control": tn.free_port(), "socks": tn.free_port()}
        # The test network's settings go in the defaults; the torrc is Tor
        # Browser's, which tor rewrites on SAVECONF.
        self.node.write_torrc(TOR_BROWSER_DEFAULTS)
        with open(self.node.torrc) as f:
            text = "".join(l for l in f if not l.startswith("DataDirectory "))
        with open(self.defaults, "w") as f:
            f.write(text)
        self.original = "# This file was generated by Tor; if you edit it, comments will not be preserved\n"
        with open(self.torrc, "w") as f:
            f.write(self.original)
        self.node.data_dir = self.tor_dir
        self.results = []
        self.bus = None

    def tool_run(self, what):
        return subprocess.run([self.tool, what, self.root], capture_output=True, text=True, timeout=30)

    def set_up_and_start(self, tap):
        r = self.tool_run("--set-up")
        with open(self.torrc) as f:
            text = f.read()
        want = subprocess.run([self.tool, "--tor-browser"], capture_output=True, text=True,
                              timeout=30).stdout.strip()
        self.results.append((r.returncode == 0 and text.startswith(self.original) and want in text
                             and os.path.exists(os.path.join(self.tor_dir, "torrc.before-websocket")),
                             "Tor Browser: set-up adds %r to its torrc, keeps a backup" % want,
                             "status %d: %s\ntorrc:\n%s" % (r.returncode, r.stderr, text)))
        binary_line = [l for l in text.splitlines() if "websocket exec" in l]
        # The app's line names the installed binary: run ours in its place.
        with open(self.torrc, "w") as f:
            f.write(text.replace(want, sn.Snippet("tb", [want]).rewritten(self.net.binary)[0]))
        self.set_up_text = text
        self.binary_line = binary_line
        # A private session bus for this tor's transport and the status app.
        self.bus = start_private_bus(self.node.dir)
        env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=self.bus)
        # As Tor Browser starts its tor (TorProcess.sys.mjs): defaults, torrc,
        # DataDirectory, a control port with cookie authentication, owned.
        self.node.started_at = time.monotonic()
        with open(os.path.join(self.node.dir, "stdout.log"), "wb") as out:
            self.node.proc = tn.spawn(
                ["tor", "--defaults-torrc", self.defaults, "-f", self.torrc,
                 "DataDirectory", self.tor_dir,
                 "+__ControlPort", "%s:%d" % (tn.LOOPBACK, self.node.ports["control"]),
                 "+__SocksPort", "%s:%d" % (tn.LOOPBACK, self.node.ports["socks"]),
                 "__OwningControllerProcess", str(os.getpid()),
                 "DisableNetwork", "1"],
                cwd=os.path.join(self.root, "Browser"), stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, env=env)
        self.net.nodes.append(self.node)
        self.node.wait_log(r"Opened Control listener", 30)
        # While its tor runs (the data directory's lock), nothing changes.
        before = open(self.torrc).read()
        r = self.tool_run("--set-up")
        r2 = self.tool_run("--undo")
        self.results.append((r.returncode == 3 and r2.returncode == 3 and open(self.torrc).read() == before
                             and "Close Tor Browser" in r.stderr,
                             "Tor Browser: set-up and undo refused while its tor holds the lock",
                             "set-up %d %r, undo %d" % (r.returncode, r.stderr, r2.returncode)))
        # How Tor Browser applies "Add a bridge manually", then connects.
        bridge_line = "websocket 127.0.0.1:%d url=ws://127.0.0.1:%d/path" % (self.port, self.port)
        self.node.control('SETCONF UseBridges=1 Bridge="%s"' % bridge_line,
                          "SETCONF DisableNetwork=0", "SAVECONF")

    def check_status_app(self, tap):
        """The status app's window, on that bus under Xvfb, lists the transport
        under "Tor Browser" with its bridge Connected (tests/applet/
        twp-watch-status.c)."""
        watcher = os.environ.get("TWP_WATCH_STATUS")
        if not watcher:
            tap.ok(True, "Tor Browser: status app # SKIP built with -Dapplet=disabled")
            return
        env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=self.bus, GSK_RENDERER="cairo",
                   GDK_BACKEND="x11", GSETTINGS_BACKEND="memory", GTK_A11Y="test")
        try:
            r = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1024x768x24", watcher, "60"],
                               capture_output=True, text=True, timeout=150, env=env,
                               stdin=subprocess.DEVNULL)
            tap.ok(r.returncode == 0 and "seen:" in r.stdout,
                   "Tor Browser: the status app lists its transport under \"Tor Browser\" with the "
                   "bridge Connected", "status %d\n%s\n%s" % (r.returncode, r.stdout, r.stderr[-2000:]))
        except subprocess.TimeoutExpired as e:
            tap.ok(False, "Tor Browser: the status app lists its transport", repr(e))

    def check(self, tap, bridge):
        for ok, desc, diag in self.results:
            tap.ok(ok, desc, diag)
        for _ in range(2 - len(self.results)):
            tap.ok(False, "Tor Browser: not run")
        check_through_bridge(tap, self.node, bridge, "Tor Browser's tor (SETCONF Bridge=)")
        self.check_status_app(tap)
        try:
            (lines,) = self.node.control("GETCONF ClientTransportPlugin")
            plugins = " | ".join(lines)
            tap.ok("lyrebird" in plugins and "snowflake-client" in plugins
                   and "websocket exec %s --client --managed" % self.net.binary in plugins,
                   "Tor Browser: its own transports are kept beside ours", plugins)
        except tn.TorNetworkError as e:
            tap.ok(False, "Tor Browser: GETCONF ClientTransportPlugin", e)
        self.node.stop()
        # After SAVECONF (no '+', no comment, the bridge saved), undo takes
        # our line out and keeps the rest. The installed path is what the
        # app looks for: put it back as the app wrote it.
        with open(self.torrc) as f:
            saved = f.read()
        want = self.binary_line[0].lstrip("+") if self.binary_line else "?"
        with open(self.torrc, "w") as f:
            f.write(saved.replace("websocket exec %s --client --managed" % self.net.binary,
                                  want.split(" ", 1)[1]))
        r = self.tool_run("--undo")
        with open(self.torrc) as f:
            after = f.read()
        tap.ok(r.returncode == 0 and "websocket exec" not in after and "Bridge websocket" in after
               and "UseBridges 1" in after,
               "Tor Browser: undo after SAVECONF takes out our line only",
               "status %d %s\nsaved:\n%s\nafter:\n%s" % (r.returncode, r.stderr, saved, after))


def start_private_bus(directory):
    """A dbus-daemon of our own (stopped by PID with the network); returns
    its address."""
    proc = tn.spawn(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                    cwd=directory, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL)
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    if not ready:
        raise tn.TorNetworkError("dbus-daemon printed no address in 30 s")
    address = proc.stdout.readline().decode().strip()
    if not address:
        raise tn.TorNetworkError("dbus-daemon exited without an address")
    return address


def check_mode(tap, name, client, bargs, front=None):
    """The client transport opened its WebSocket in the mode the Bridge line
    asked for (its own debug LOG line, as tor logged it), and behind a
    GoFront, every upgrade was answered the Go server's way."""
    want = "base64" if "mode=base64" in bargs else "binary"
    log = client.read_log("debug")
    modes = set(re.findall(r"WebSocket open \((\w+) frames\)", log))
    answered = "" if front is None else ", upgrades answered with HTTP/1.0 101 as the Go server does"
    tap.ok(modes == {want} and (front is None or front.rewritten > 0),
           "%s: client transport opened its WebSockets in %s mode%s" % (name, want, answered),
           "modes logged: %s%s" % (sorted(modes) or "none",
                                   "" if front is None else "; HTTP/1.0 answers: %d" % front.rewritten))


if __name__ == "__main__":
    sys.exit(main())
