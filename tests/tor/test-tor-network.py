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
that only the ExtORPort path produces). TAP output.

Usage: test-tor-network.py [--logdir DIR]   (binary from $TWP_BINARY)
Logs are copied to DIR (default <build>/tests/tor-logs) when a test fails.
"""

import argparse
import hashlib
import os
import re
import shutil
import socket
import sys
import threading
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tor_network as tn  # noqa: E402

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
    tap = Tap(planned)
    if not binary or not os.access(binary, os.X_OK):
        tap.skip_rest(planned, "TWP_BINARY not set or not executable: %r" % binary)
        return 1
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
        status = run(tap, planned, net, blob, work)
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


def run(tap, planned, net, blob, work):
    ca, cert, key = tn.make_test_ca(os.path.join(work, "tls"))

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
    for front in fronts.values():
        front.close()
    net.stop()
    left = tn.leftover_processes()
    tap.ok(not left, "every tor and transport process stopped by PID", "still running: %s" % left)
    return 0


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
