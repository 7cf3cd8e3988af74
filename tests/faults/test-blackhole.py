#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Fault case: the network path to a bridge drops packets, then black-holes.

Runs in a network namespace of its own (`unshare -n`: a loopback
interface nobody else sees, gone with the last process in it, nftables
rules included), so the rules never touch the machine's network. Skipped
(77) only if namespaces are not permitted here.

A client (managed, private bus, --keepalive 2 --stall-timeout 4
--connect-timeout 5) uses bridges A and B (managed servers, keepalive=2
stall-timeout=4, in front of a fake ExtORPort that echoes).

1. Loss: nftables drops 3% of the packets to and from B's port while B's
   tunnels echo: TCP retransmits and not a byte is lost or corrupted.
2. Black hole: every packet to and from A's port is dropped. A's idle
   tunnels end by keepalive (a ping unanswered for one more keepalive
   interval) and A's busy tunnel by the stall timeout, on both sides:
   the client's SOCKS connections see EOF, tor's log says why, A's
   metrics count the closes as keepalive; a new tunnel to A fails with a
   timeout that A's bridge on D-Bus reports (failing). B's tunnels carry on.
3. The rule is removed: a new tunnel to A works, A's bridge is connected.

Deadlines are generous multiples of the timeouts (the machine is shared);
what is checked is that the dead tunnels end long before TCP itself
would give up (about 15 minutes), not how fast.
"""

import os
import re
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faults import (BRIDGE_CONNECTED, BRIDGE_FAILING, Case, CaseError,  # noqa: E402
                    FakeExtOrPort, ManagedPT, Pump, SessionBus, SocksError, Tunnel, free_port,
                    wait_until)

INSIDE = "TWP_FAULTS_IN_NETNS"
KEEPALIVE, STALL = 2, 4
# A dead tunnel ends within about keepalive (idle before the ping) +
# keepalive (the pong's wait) + 1 s of tick, or the stall timeout + 1 s:
# we allow several times that.
DEADLINE = 40


def reexec_in_namespace():
    """Run this script again inside a new network namespace; as root a
    plain one, otherwise inside a user namespace mapping us to root."""
    argv = [sys.executable] + sys.argv
    env = dict(os.environ, **{INSIDE: "1"})
    tries = [["unshare", "--net"]] if os.geteuid() == 0 else []
    tries.append(["unshare", "--net", "--map-root-user"])
    why = []
    for prefix in tries:
        probe = subprocess.run(prefix + ["true"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
        if probe.returncode == 0:
            os.execvpe(prefix[0], prefix + argv, env)
        why.append("%s: %s" % (" ".join(prefix), probe.stderr.strip() or probe.returncode))
    print("# SKIP network namespaces are not permitted here (%s)" % "; ".join(why))
    sys.exit(77)


def nft(*script):
    r = subprocess.run(["nft", "-f", "-"], input="\n".join(script) + "\n",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise CaseError("nft: %s" % r.stderr.strip())


class Flood(threading.Thread):
    """Sends into a tunnel as fast as it takes, and reads what comes back
    (a busy tunnel, never a stalled reader here), until the tunnel ends."""

    def __init__(self, tunnel):
        super().__init__(daemon=True)
        self.tunnel = tunnel
        self.sent = 0
        self.drain = threading.Thread(target=self._drain, daemon=True)

    def _drain(self):
        try:
            while self.tunnel.sock.recv(65536):
                pass
        except OSError:
            pass

    def run(self):
        self.drain.start()
        chunk = os.urandom(16 * 1024)
        try:
            while True:
                self.sent += self.tunnel.sock.send(chunk)
        except OSError:
            pass
        self.drain.join()


def metric(port, name, labels):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=20) as r:
        text = r.read().decode()
    m = re.search(r"^%s\{%s\} (\d+)" % (re.escape(name), re.escape(labels)), text, re.M)
    return int(m.group(1)) if m else 0


def main():
    if os.environ.get(INSIDE) != "1":
        reexec_in_namespace()
    with Case("blackhole") as case:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        bus = SessionBus(case)
        extor = FakeExtOrPort(case)
        port_a, metrics_a = free_port(), free_port()
        options = ["keepalive=%d" % KEEPALIVE, "stall-timeout=%d" % STALL]
        server_a = ManagedPT.server(case, "server-a", port_a, extor,
                                    options + ["metrics=127.0.0.1:%d" % metrics_a])
        server_b = ManagedPT.server(case, "server-b", 0, extor, options)
        client = ManagedPT.client(case, "client", bus=bus,
                                  args=["--keepalive=%d" % KEEPALIVE, "--stall-timeout=%d" % STALL,
                                        "--connect-timeout=5"])
        url_a = "ws://127.0.0.1:%d/" % port_a
        url_b = "ws://127.0.0.1:%d/" % server_b.port

        idle_a = [Tunnel(client.port, url_a) for _ in range(2)]
        busy_a = Tunnel(client.port, url_a)
        live_b = [Tunnel(client.port, url_b) for _ in range(2)]
        errors = [e for e in (t.echo(64 * 1024) for t in idle_a + [busy_a] + live_b) if e]
        case.check(not errors, "5 tunnels to two bridges echo", "; ".join(errors))

        pump = Pump(live_b)
        pump.start()
        try:
            # 1. Packet loss on B's path.
            nft("table inet faults {",
                "  chain input {",
                "    type filter hook input priority 0; policy accept;",
                "    tcp dport %d numgen random mod 100 < 3 drop" % server_b.port,
                "    tcp sport %d numgen random mod 100 < 3 drop" % server_b.port,
                "  }",
                "}")
            before = pump.bytes
            t = Tunnel(client.port, url_b)
            err = t.echo(4 * 1024 * 1024)
            t.close()
            wait_until("traffic on B under loss", lambda: pump.bytes > before + 1024 * 1024, 60)
            case.check(err is None and not pump.errors,
                       "3%% packet loss on B: 4 MiB and %d KiB more echo intact"
                       % ((pump.bytes - before) // 1024), "%s %s" % (err, pump.errors))
            nft("flush table inet faults")

            # 2. Black hole on A's path, both directions.
            closes_before = metric(metrics_a, "tor_websocket_proxy_tunnel_closes_total", 'reason="keepalive"')
            log_start = len(client.logs())
            flood = Flood(busy_a)
            flood.start()
            time.sleep(0.5)
            nft("add rule inet faults input tcp dport %d drop" % port_a,
                "add rule inet faults input tcp sport %d drop" % port_a)
            holed_at = time.monotonic()
            ended = [t.wait_closed(DEADLINE) for t in idle_a]
            case.check(all(ended), "black hole: A's idle tunnels end (keepalive %d s)" % KEEPALIVE,
                       "ended: %s after %.0f s" % (ended, time.monotonic() - holed_at))
            flood.join(DEADLINE)
            case.check(not flood.is_alive(),
                       "black hole: A's busy tunnel ends (stall timeout %d s) after %d KiB sent"
                       % (STALL, flood.sent // 1024))
            case.note("the dead tunnels ended %.1f s after the black hole began"
                      % (time.monotonic() - holed_at))
            # One line per dead tunnel (A's idle ones and the busy one),
            # read by another thread: wait for all of them.
            dead = len(idle_a) + 1
            said = wait_until("the client's LOG lines on the %d ends" % dead,
                              lambda: (lambda ended: ended if len(ended) >= dead else None)(
                                  [l for l in client.logs()[log_start:] if "connection to bridge ended" in l]),
                              DEADLINE)
            case.check(len(said) >= dead and all("keepalive" in l or "stall" in l or "progress" in l
                                                for l in said),
                       "tor's log says why each dead tunnel ended", "\n".join(said))
            for l in said:
                case.note(l)
            # A's side: each of its tunnels ends too (the metrics endpoint
            # is on another port, outside the black hole): the idle ones by
            # keepalive, the busy one by keepalive or, as A was writing
            # into the dead path too, by the stall timeout.
            wait_until("A's tunnels to end", lambda: metric(
                metrics_a, "tor_websocket_proxy_tunnels_open", 'mode="binary",scheme="ws"') == 0, DEADLINE)
            closes = metric(metrics_a, "tor_websocket_proxy_tunnel_closes_total", 'reason="keepalive"')
            case.check(closes >= closes_before + 2,
                       "black hole: bridge A ends its tunnels, the idle ones by keepalive (%d)"
                       % (closes - closes_before))

            try:
                t = Tunnel(client.port, url_a)
                t.close()
                case.check(False, "black hole: a new tunnel to A fails")
            except SocksError as e:
                case.check(e.reply != 0, "black hole: a new tunnel to A fails (SOCKS reply %d)" % e.reply)
            try:
                bridge_a = wait_until("bridge A failing", lambda: (lambda b: b if b and b.get("State") == BRIDGE_FAILING
                                                                    else None)(bus.bridges(client.pid).get(url_a)), 60)
            except CaseError:
                case.note(repr(bus.bridges(client.pid)))
                raise
            case.check("time" in bridge_a.get("LastFailureDetails", ""),
                       "black hole: A's bridge on D-Bus is failing, timed out",
                       repr(bridge_a))
            case.note("LastFailureDetails: %s" % bridge_a.get("LastFailureDetails"))
            case.check(not pump.errors, "B's tunnels carried on through A's black hole", "; ".join(pump.errors))

            # 3. The path comes back.
            nft("delete table inet faults")
            t = Tunnel(client.port, url_a)
            case.check(t.echo(256 * 1024) is None, "path back: a new tunnel to A echoes 256 KiB")
            wait_until("bridge A connected", lambda: (lambda b: b if b and b.get("State") == BRIDGE_CONNECTED
                                                      else None)(bus.bridges(client.pid).get(url_a)), 60)
            case.check(True, "path back: A's bridge on D-Bus is connected")
            t.close()
        finally:
            pump.stop()
            subprocess.run(["nft", "delete", "table", "inet", "faults"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        case.check(not pump.errors and pump.bytes > 0,
                   "B's tunnels: %d KiB echoed intact through the whole case" % (pump.bytes // 1024),
                   "; ".join(pump.errors))
        for t in live_b:
            t.close()
        case.check(client.alive() and server_a.alive() and server_b.alive(), "every process still runs")
    case.exit()


if __name__ == "__main__":
    main()
