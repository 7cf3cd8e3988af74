#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""The demonstration run by scripts/demo.sh: real tor through our transport.

Starts a private Tor network on 127.0.0.1 (directory authority, three
relays, a bridge running our server transport behind the Extended ORPort,
a client running our client transport), shows its bootstrap progress,
fetches a random file from a local HTTP server through the client's SOCKS
port over a 3-hop circuit whose first hop is the bridge, prints the figures,
then leaves the SOCKS port up for you to try until Ctrl-C.

Environment:
  DEMO_NO_WAIT=1       stop after the fetch instead of waiting for Ctrl-C
  DEMO_MODE=binary     binary (default), base64 or wss (TLS with a test CA)
  DEMO_BYTES=N         size of the file to fetch (default 16 MiB)
"""

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tor_network as tn  # noqa: E402


def say(text=""):
    print(text, flush=True)


def main():
    ap = argparse.ArgumentParser(description="private Tor network demo")
    ap.add_argument("--binary", default=os.environ.get("TWP_BINARY"),
                    help="tor-websocket-proxy executable")
    ap.add_argument("--logdir", default=None,
                    help="where to keep the logs if something fails")
    args = ap.parse_args()
    if not args.binary or not os.access(args.binary, os.X_OK):
        sys.exit("demo: no tor-websocket-proxy binary (--binary or TWP_BINARY)")
    for tool in ("tor", "tor-gencert", "openssl"):
        if shutil.which(tool) is None:
            sys.exit("demo: %s is missing (scripts/install-deps.sh installs it)" % tool)
    mode = os.environ.get("DEMO_MODE", "binary")
    if mode not in ("binary", "base64", "wss"):
        sys.exit("demo: DEMO_MODE must be binary, base64 or wss")
    size = int(os.environ.get("DEMO_BYTES", str(16 * 1024 * 1024)))
    wait = os.environ.get("DEMO_NO_WAIT") != "1"

    tn.install_signal_handlers()
    work = tempfile.mkdtemp(prefix="twp-demo-")
    blob = tn.BlobServer(size)
    net = tn.TorNetwork(work, args.binary, exit_ports=[blob.port], relays=3)
    failed = True
    try:
        run(net, blob, mode, wait)
        failed = False
    except tn.Interrupted:
        say()
        say("interrupted")
        failed = False
    except tn.TorNetworkError as e:
        say("demo FAILED: %s" % e)
    finally:
        say("stopping every tor and transport process...")
        net.stop()
        blob.close()
        left = tn.leftover_processes()
        if left:
            say("still running (PIDs): %s" % left)
        if failed:
            dest = args.logdir or os.path.join(work, "..", "twp-demo-logs-%d" % os.getpid())
            net.collect_logs(dest)
            say("logs kept in %s" % os.path.abspath(dest))
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


def run(net, blob, mode, wait):
    t0 = time.monotonic()

    def stamp():
        return "[%5.1f s]" % (time.monotonic() - t0)

    say("== A private Tor network on 127.0.0.1, through the websocket transport ==")
    say("HTTP server with a %d-byte random file: http://127.0.0.1:%d/blob" % (len(blob.blob), blob.port))
    net.start()
    say("%s started a directory authority and %d relays (exits to 127.0.0.1:%d only)"
        % (stamp(), len(net.relays), blob.port))
    net.wait_for_consensus(
        90, lambda r, e, want: say("%s consensus: %d/%d relays, %d exits" % (stamp(), r, want, e)))

    topts, bargs, pt_args = [], [], []
    if mode == "wss":
        ca, cert, key = tn.make_test_ca(os.path.join(net.workdir, "tls"))
        topts = ["tls-cert=" + cert, "tls-key=" + key]
        pt_args = ["--ca-file", ca]
    bridge = net.add_bridge("bridge", topts)
    where = net.wait_bridge_ready(bridge)
    say("%s bridge: tor launched our server transport: websocket listening on %s, "
        "relaying to tor's ExtORPort" % (stamp(), where))
    port = bridge.ports["websocket"]
    if mode == "wss":
        bargs = ["url=wss://localhost:%d/" % port]
    else:
        bargs = ["url=ws://127.0.0.1:%d/" % port]
        if mode == "base64":
            bargs.append("mode=base64")
    client = net.add_client("client", bridge, bargs, pt_args)
    say("%s client: Bridge %s" % (stamp(), client.bridge_line))
    client.wait_bootstrapped(
        120, lambda node, pct, tag, summary: say("%s client: Bootstrapped %3d%% (%s): %s"
                                                 % (stamp(), pct, tag, summary)))
    say("%s client bootstrapped through the bridge, %.1f s after the first tor started"
        % (stamp(), time.monotonic() - net.started_at))

    watcher = tn.StreamWatcher(client)
    body, secs = tn.socks_http_get(client.ports["socks"], "127.0.0.1", blob.port, "/blob")
    time.sleep(0.3)
    circ = watcher.circuit_for("127.0.0.1:%d" % blob.port)
    watcher.close()
    digest = hashlib.sha256(body).hexdigest()
    names = {n.fingerprint(): n.name for n in net.nodes if n.role != "client"}
    path = tn.circuit_path(client, circ) if circ else None
    say()
    say("fetched http://127.0.0.1:%d/blob through tor's SOCKS port 127.0.0.1:%d"
        % (blob.port, client.ports["socks"]))
    say("  size:    %d bytes" % len(body))
    say("  time:    %.2f s (%.1f MB/s)" % (secs, len(body) / secs / 1e6))
    say("  sha256:  %s %s" % (digest, "ok" if digest == blob.sha256 else "MISMATCH"))
    if path:
        say("  circuit: %s" % " -> ".join(names.get(fp, fp) for fp in path))
    if digest != blob.sha256:
        raise tn.TorNetworkError("the file arrived corrupted")
    say()
    if not wait:
        say("DEMO_NO_WAIT=1: not waiting.")
        return
    say("Tor's SOCKS port stays up. Try, from another terminal:")
    say("  curl --socks5-hostname 127.0.0.1:%d http://127.0.0.1:%d/blob -o /dev/null"
        % (client.ports["socks"], blob.port))
    say("Press Ctrl-C to stop everything.")
    while all(node.alive() for node in net.nodes):
        time.sleep(0.5)
    dead = [n.name for n in net.nodes if not n.alive()]
    raise tn.TorNetworkError("tor exited unexpectedly: %s" % ", ".join(dead))


if __name__ == "__main__":
    sys.exit(main())
