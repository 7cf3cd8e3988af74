#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Fault case: tor is sent SIGHUP while the client transport has tunnels open.

A real tor (Debian's) runs our client transport for a websocket Bridge
line (our server, managed by the test, in front of a fake ExtORPort that
echoes); the transport exports on a private session bus, which tor
passes on. Tunnels opened through the transport's SOCKS port echo
continuously while:

1. tor is sent SIGHUP with its torrc unchanged, twice: tor re-reads its
   configuration and keeps the transport (same PID, no restart, B2 does
   not apply: we register every transport tor asks for), the tunnels go
   on without losing a byte, and D-Bus still shows them.
2. tor is sent SIGHUP after the ClientTransportPlugin line changed: tor
   stops the old transport and starts the new one at once (no gap as in
   PT-CHECKLIST B2); new tunnels work through it.
"""

import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faults  # noqa: E402
from faults import (Case, FakeExtOrPort, ManagedPT, Pump, SessionBus, Tunnel,  # noqa: E402
                    wait_until)
from faults import tn  # noqa: E402

TRANSPORT_CONNECTED = 40


def write_torrc(case, path, server_port, exec_extra):
    data = case.path("tor-data")
    os.makedirs(data, mode=0o700, exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join([
            "DataDirectory " + data,
            "RunAsDaemon 0",
            "SocksPort 127.0.0.1:auto",
            "Log notice file " + case.path("tor-notice.log"),
            "Log [pt]info [*]notice file " + case.path("tor-pt.log"),
            "SafeLogging 0",
            "UseBridges 1",
            "ClientTransportPlugin websocket exec %s --client --managed%s" % (faults.binary(), exec_extra),
            "Bridge websocket 127.0.0.1:%d url=ws://127.0.0.1:%d/" % (server_port, server_port),
            # Bridges only; an authority nobody listens for, in case.
            faults.FAKE_AUTHORITY,
        ]) + "\n")


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def main():
    with Case("tor-hup") as case:
        if not shutil.which("tor"):
            raise faults.CaseError("tor is not installed (scripts/install-deps.sh installs it)")
        bus = SessionBus(case)
        extor = FakeExtOrPort(case)
        server = ManagedPT.server(case, "server", 0, extor)
        torrc = case.path("torrc")
        write_torrc(case, torrc, server.port, "")
        empty = case.path("empty-torrc")
        open(empty, "w").close()
        env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=bus.address)
        with open(case.path("tor-stdout.log"), "wb") as out:
            tor = tn.spawn(["tor", "--defaults-torrc", empty, "-f", torrc], cwd=case.workdir,
                           stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)
        pt_pid, socks_port = wait_until("tor's transport listening", lambda: faults.transport_of(tor), 60)
        case.note("tor %d runs the transport %d (SOCKS port %d)" % (tor.pid, pt_pid, socks_port))
        url = "ws://127.0.0.1:%d/" % server.port

        tunnels = [Tunnel(socks_port, url) for _ in range(3)]
        pump = Pump(tunnels)
        pump.start()
        try:
            wait_until("traffic", lambda: pump.bytes > 1024 * 1024, 60)
            for i in range(2):
                reloads = read(case.path("tor-notice.log")).count("Received reload signal")
                before = pump.bytes
                tor.send_signal(signal.SIGHUP)
                wait_until("tor's reload %d" % (i + 1),
                           lambda: read(case.path("tor-notice.log")).count("Received reload signal") > reloads,
                           60)
                wait_until("traffic after the reload", lambda: pump.bytes > before + 1024 * 1024, 60)
                case.check(tor.poll() is None and faults.transport_of(tor) == (pt_pid, socks_port),
                           "SIGHUP %d, torrc unchanged: tor keeps the same transport (PID %d)" % (i + 1, pt_pid),
                           "now %s" % (faults.transport_of(tor),))
                case.check(not pump.errors, "SIGHUP %d: the open tunnels echo on, every byte intact" % (i + 1),
                           "; ".join(pump.errors))
            log = read(case.path("tor-pt.log"))
            case.check("for restart" not in log,
                       "tor never prepared the transport for restart", log[-2000:])
            tr = bus.transport(pt_pid)
            case.check(tr.get("State") == TRANSPORT_CONNECTED and tr.get("ActiveConnections", 0) >= 3,
                       "D-Bus still shows the transport connected with its tunnels", repr(tr))
        finally:
            pump.stop()
        case.check(not pump.errors and pump.bytes > 0,
                   "%d KiB echoed intact through two reloads" % (pump.bytes // 1024), "; ".join(pump.errors))

        # A changed transport line: tor replaces the transport at once.
        write_torrc(case, torrc, server.port, " --log-level=info")
        tor.send_signal(signal.SIGHUP)
        new = wait_until("a new transport", lambda: (lambda t: t if t and t[0] != pt_pid else None)(
            faults.transport_of(tor)), 60)
        case.check(True, "SIGHUP with a changed ClientTransportPlugin line: tor runs a new transport (PID %d)"
                   % new[0])
        gone = wait_until("the old transport to exit", lambda: not tn._pid_alive(pt_pid), 60)
        case.check(gone, "the old transport exited")
        ended = [t.wait_closed(30) for t in tunnels]
        case.check(all(ended), "the old transport's tunnels ended with it (EOF, no hang)")
        t = Tunnel(new[1], url)
        case.check(t.echo(256 * 1024) is None, "a tunnel through the new transport echoes 256 KiB")
        t.close()
        case.check(tor.poll() is None, "tor still runs")
        case.note("tor's pt log:\n" + "\n".join(read(case.path("tor-pt.log")).splitlines()[-12:]))
    case.exit()


if __name__ == "__main__":
    main()
