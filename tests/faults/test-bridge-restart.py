#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Fault case: the WebSocket server (the bridge) is killed and restarted.

One client (managed, on a private bus) uses two bridges, A and B, each a
managed server in front of the same fake ExtORPort (echo). With tunnels
open to both, and while "tor" keeps asking for new tunnels to A (one
every 0.3 s, as tor retries a bridge), A is killed with SIGKILL:
A's tunnels end (EOF, no hang), the new ones are refused, A's bridge on
D-Bus goes failing (40) with the failure in words and the transport
degraded (50); B's tunnels carry on echoing without losing a byte. Then
A is started again on the same port: new tunnels work, A's bridge is
connected (30) again and the transport connected (40).
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faults import (BRIDGE_CONNECTED, BRIDGE_FAILING, Case, FakeExtOrPort,  # noqa: E402
                    ManagedPT, Pump, SessionBus, SocksError, Tunnel, free_port, wait_until)

TRANSPORT_CONNECTED, TRANSPORT_DEGRADED = 40, 50


class Asker(threading.Thread):
    """Opens a new tunnel to url every 0.3 s as tor retries a bridge:
    records (time, SOCKS reply) and echoes 1 KiB through the ones that
    open, then closes them."""

    def __init__(self, socks_port, url):
        super().__init__(daemon=True)
        self.socks_port, self.url = socks_port, url
        self.results = []
        self.bad_echo = []
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            try:
                t = Tunnel(self.socks_port, self.url, timeout=30)
            except SocksError as e:
                self.results.append((time.monotonic(), e.reply))
            except OSError as e:
                self.results.append((time.monotonic(), str(e)))
            else:
                err = t.echo(1024)
                if err:
                    self.bad_echo.append(err)
                t.close()
                self.results.append((time.monotonic(), 0))
            self.stopping.wait(0.3)

    def stop(self):
        self.stopping.set()
        self.join(60)


def main():
    with Case("bridge-restart") as case:
        bus = SessionBus(case)
        extor = FakeExtOrPort(case)
        port_a = free_port()
        server_a = ManagedPT.server(case, "server-a", port_a, extor)
        server_b = ManagedPT.server(case, "server-b", 0, extor)
        client = ManagedPT.client(case, "client", bus=bus)
        url_a = "ws://127.0.0.1:%d/" % port_a
        url_b = "ws://127.0.0.1:%d/" % server_b.port

        tunnels_a = [Tunnel(client.port, url_a) for _ in range(3)]
        tunnels_b = [Tunnel(client.port, url_b) for _ in range(2)]
        errors = [e for e in (t.echo(64 * 1024) for t in tunnels_a + tunnels_b) if e]
        case.check(not errors, "5 tunnels to two bridges echo", "; ".join(errors))

        pump = Pump(tunnels_b)
        pump.start()
        asker = Asker(client.port, url_a)
        asker.start()
        time.sleep(1)

        killed_at = time.monotonic()
        server_a.kill()
        ended = [t.wait_closed(30) for t in tunnels_a]
        case.check(all(ended), "bridge A killed: its %d tunnels end (EOF), none hangs" % len(tunnels_a),
                   "ended: %s" % ended)

        def a_failing():
            b = bus.bridges(client.pid).get(url_a)
            return b if b and b.get("State") == BRIDGE_FAILING else None
        bridge_a = wait_until("bridge A failing on D-Bus", a_failing, 60)
        case.check(True, "bridge A killed: its D-Bus state goes failing (40)")
        details = bridge_a.get("LastFailureDetails", "")
        case.check(bool(details) and "127.0.0.1" not in details and str(port_a) not in details,
                   "bridge A killed: the failure is in words, without the address", repr(details))
        case.note("LastFailureDetails: %s" % details)
        transport = bus.transport(client.pid)
        case.check(transport.get("State") == TRANSPORT_DEGRADED,
                   "bridge A failing, B connected: the transport is degraded (50)", repr(transport))

        refused = wait_until("refused tunnels while A is down",
                             lambda: [r for at, r in asker.results if at > killed_at and r != 0], 60)
        case.check(all(isinstance(r, int) and r != 0 for r in refused),
                   "while A is down, tor's new tunnels get a SOCKS failure (%d so far, replies %s)"
                   % (len(refused), sorted(set(refused))))
        time.sleep(2)

        restarted_at = time.monotonic()
        server_a = ManagedPT.server(case, "server-a2", port_a, extor)
        case.check(server_a.port == port_a, "bridge A restarted on its port")
        wait_until("a new tunnel to A after the restart",
                   lambda: [r for at, r in asker.results if at > restarted_at and r == 0], 60)
        case.check(True, "after the restart, tor's new tunnels to A open again")
        t = Tunnel(client.port, url_a)
        case.check(t.echo(256 * 1024) is None, "a new tunnel to A echoes 256 KiB")

        def a_connected():
            b = bus.bridges(client.pid).get(url_a)
            return b if b and b.get("State") == BRIDGE_CONNECTED else None
        wait_until("bridge A connected on D-Bus", a_connected, 60)
        case.check(True, "bridge A's D-Bus state is connected (30) again")
        transport = wait_until("transport connected",
                               lambda: (lambda tr: tr if tr.get("State") == TRANSPORT_CONNECTED else None)(
                                   bus.transport(client.pid)), 60)
        case.check(transport.get("State") == TRANSPORT_CONNECTED, "the transport is connected (40) again")

        asker.stop()
        pump.stop()
        case.check(not asker.bad_echo, "every tunnel tor opened to A echoed intact", "; ".join(asker.bad_echo))
        case.check(not pump.errors and pump.bytes > 0,
                   "bridge B's tunnels carried on through the fault: %d bytes echoed intact" % pump.bytes,
                   "; ".join(pump.errors))
        t.close()
        for b in tunnels_b:
            b.close()
        case.check(client.alive() and server_b.alive(), "the client and bridge B still run")
        said = [l for l in client.logs() if l.startswith("warning: cannot open WebSocket to bridge")
                and "refused" in l]
        case.check(said and not any("127.0.0.1" in l for l in said),
                   "tor's log says in words why bridge A failed, without its address",
                   "\n".join(client.logs()))
        if said:
            case.note(said[0])
        errors = [l for l in client.logs() if l.startswith("error")]
        case.check(not errors, "no error in the client's log", "\n".join(errors))
    case.exit()


if __name__ == "__main__":
    main()
