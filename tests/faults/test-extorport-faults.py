#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Fault case: tor's Extended ORPort misbehaves under a running server.

client (managed, on a private bus) -> server (managed) -> a fake ExtORPort
that echoes. With tunnels open and echoing, the ExtORPort in turn resets
connections mid-handshake (after the client nonce), stalls (sends its
auth types, then nothing), refuses (nothing listens), and moves to
another port (tor listening elsewhere than TOR_PT_EXTENDED_SERVER_PORT,
which a server PT reads once at start, PT-CHECKLIST S5). Each time: the new
tunnel is refused (HTTP 503 -> a SOCKS failure), tor's log gets a warning
in words naming the step, the client's bridge on D-Bus records the
failure, the open tunnels lose no byte, and once the ExtORPort is back a
new tunnel works.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faults import (Case, FakeExtOrPort, ManagedPT, SessionBus, SocksError,  # noqa: E402
                    Tunnel, free_port, wait_until)

# handshake-timeout=4: tor's steps get min(5, 4 / 2) = 2 s (README).
SERVER_OPTIONS = ["handshake-timeout=4"]

FAULTS = [
    # (mode, what the server's warning must say)
    ("reset", r"Extended ORPort handshake failed: .*(reset|closed)"),
    ("stall", r"Extended ORPort handshake failed: .*(tor's authentication|timed out|stalled)"),
    ("closed", r"cannot connect to tor's Extended ORPort: .*[Rr]efused"),
]


def check_live(case, tunnels, what):
    errors = [e for e in (t.echo(256 * 1024) for t in tunnels) if e]
    case.check(not errors, "%s: the %d open tunnels echo 256 KiB each, every byte intact"
               % (what, len(tunnels)), "; ".join(errors))


def try_new_tunnel(socks_port, url):
    try:
        t = Tunnel(socks_port, url)
    except SocksError as e:
        return None, e.reply
    return t, 0


def main():
    with Case("extorport") as case:
        bus = SessionBus(case)
        extor = FakeExtOrPort(case)
        server = ManagedPT.server(case, "server", 0, extor, SERVER_OPTIONS)
        client = ManagedPT.client(case, "client", bus=bus)
        url = "ws://127.0.0.1:%d/" % server.port

        tunnels = [Tunnel(client.port, url) for _ in range(3)]
        check_live(case, tunnels, "before any fault")

        for mode, warning in FAULTS:
            start = len(server.logs())
            if mode == "closed":
                extor.close_listener()
            extor.mode = mode
            t, reply = try_new_tunnel(client.port, url)
            case.check(t is None and reply != 0,
                       "ExtORPort %s: the new tunnel is refused (SOCKS reply %d)" % (mode, reply))
            if t:
                t.close()
            line = server.wait_log(warning, 30, start)
            case.check(line.startswith("warning:"),
                       "ExtORPort %s: tor's log gets a warning in words" % mode, line)
            case.note(line)
            bridge = bus.bridge(client.pid)
            case.check(bridge is not None and "503" in bridge.get("LastFailureDetails", "")
                       and bridge.get("LastFailureCode") == 503,
                       "ExtORPort %s: the client's bridge on D-Bus says HTTP 503" % mode, repr(bridge))
            check_live(case, tunnels, "ExtORPort %s" % mode)

            extor.mode = "echo"
            if mode == "closed":
                extor.reopen()
            t, reply = try_new_tunnel(client.port, url)
            case.check(t is not None and t.echo(64 * 1024) is None,
                       "ExtORPort %s ended: a new tunnel works" % mode, "SOCKS reply %d" % reply)
            if t:
                tunnels.append(t)

        # tor listening on another port than the one the server was given.
        old_port = extor.port
        extor.close_listener()
        extor.reopen(free_port())
        start = len(server.logs())
        t, reply = try_new_tunnel(client.port, url)
        case.check(t is None and reply != 0,
                   "ExtORPort moved to another port: the new tunnel is refused (SOCKS reply %d)" % reply)
        line = server.wait_log(r"cannot connect to tor's Extended ORPort: .*[Rr]efused", 30, start)
        case.check(line.startswith("warning:") and "restart tor" in line,
                   "ExtORPort moved: tor's log gets a warning saying to restart tor", line)
        case.check(extor.counts.get("echo", 0) > 0 and server.alive(),
                   "ExtORPort moved: the server keeps running and says why", line)
        case.note(line)
        check_live(case, tunnels, "ExtORPort moved")
        extor.close_listener()
        extor.reopen(old_port)
        t, reply = try_new_tunnel(client.port, url)
        case.check(t is not None and t.echo(64 * 1024) is None,
                   "ExtORPort back on its port: a new tunnel works", "SOCKS reply %d" % reply)
        if t:
            tunnels.append(t)

        # Every fault above happened while these were open.
        check_live(case, tunnels, "at the end")
        bridge = wait_until("bridge state connected",
                            lambda: (lambda b: b if b and b.get("State") == 30 else None)(bus.bridge(client.pid)),
                            30)
        case.check(bridge["State"] == 30, "the client's bridge is connected again")
        for t in tunnels:
            t.close()
        case.check(server.alive() and client.alive(), "client and server still run")
        errors = [l for l in server.logs() + client.logs() if l.startswith("error")]
        case.check(not errors, "no error in tor's log", "\n".join(errors))
    case.exit()


if __name__ == "__main__":
    main()
