#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""File descriptors run out (RLIMIT_NOFILE lowered with prlimit), first in
the client, then in the server: new tunnels are refused cleanly (a SOCKS
failure or a closed connection, never a hang), the tunnel already open
carries every byte, the process stays idle at its limit (no accept loop
spinning on EMFILE: under 30% of one core, a ratio), tor's log says so
once, and new tunnels work again when the limit is raised."""

import os
import resource
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resfaults import (Cleanup, Echo, check, cpu_share, echo_check, max_fd, socks_open, start_client,
                       start_server, wait_until)

CPU_BOUND = 0.30


def refused(socks_port, url, held):
    """Whether a new tunnel is refused: SOCKS failure or closed. One that
    opens is held in @held, so that its descriptors stay taken."""
    s, code = socks_open(socks_port, url)
    if s is not None and code == 0:
        held.append(s)
        return False
    if s is not None:
        s.close()
    return True


def at_limit(victim, socks_port, url, label):
    """Lowers @victim's descriptor limit to what it holds, then expects
    refusals, an idle process, and its LOG line."""
    hard = resource.prlimit(victim.proc.pid, resource.RLIMIT_NOFILE)[1]
    # The highest descriptor in use + 1: holes below it are filled by the
    # first attempts, then every new descriptor fails.
    limit = max_fd(victim.proc.pid) + 1
    resource.prlimit(victim.proc.pid, resource.RLIMIT_NOFILE, (limit, hard))
    print(f"{label}: RLIMIT_NOFILE lowered to {limit}", flush=True)
    held = []
    wait_until(lambda: refused(socks_port, url, held), f"{label}: a new tunnel refused at the limit", timeout=60,
               step=0)
    check(len(held) < 32, f"{label}: refused after {len(held)} more tunnels filled the holes below the limit")
    # Connections keep arriving (tor retries) while the process is at its
    # limit: each must be refused, none may make it spin.
    pending = []

    def knock():
        try:
            pending.append(socket.create_connection(("127.0.0.1", victim.port), timeout=5))
        except OSError:
            pass

    share = cpu_share(victim.proc.pid, 3.0, during=knock)
    for s in pending:
        s.close()
    print(f"{label}: CPU at the limit {share:.1%} of one core", flush=True)
    check(share < CPU_BOUND, f"{label}: idle at its limit (< {CPU_BOUND:.0%} of one core)")
    victim.wait_line(r"LOG SEVERITY=warning MESSAGE=.*out of file descriptors")
    check(True, f"{label}: tor's log says the descriptors ran out")
    check(victim.count(r"out of file descriptors") == 1, f"{label}: said once per episode, not per connection")
    check(victim.alive(), f"{label}: still running")
    for s in held:
        check(echo_check(s, 4096, 4), f"{label}: a tunnel opened below the limit still works")
        s.close()
    return hard


def main():
    with Cleanup() as c:
        echo = Echo()
        c.add(echo.sock.close)
        server = start_server(c.tmp, echo.port)
        c.add(server.stop)
        client = start_client(c.tmp)
        c.add(client.stop)
        url = f"ws://127.0.0.1:{server.port}/"

        tunnel, code = socks_open(client.port, url)
        check(tunnel is not None and code == 0, "a first tunnel opens")
        check(echo_check(tunnel, 256 * 1024, 1), "it carries 256 KiB")

        for victim, label in ((client, "client"), (server, "server")):
            hard = at_limit(victim, client.port, url, label)
            check(echo_check(tunnel, 256 * 1024, 2), f"{label}: the open tunnel still carries every byte")
            resource.prlimit(victim.proc.pid, resource.RLIMIT_NOFILE, (hard, hard))
            s, code = wait_until(lambda: (lambda r: r if r[0] is not None and r[1] == 0 else
                                          (r[0] and r[0].close()) or None)(socks_open(client.port, url)),
                                 f"{label}: a new tunnel after the limit is raised")
            check(echo_check(s, 64 * 1024, 3), f"{label}: the new tunnel carries every byte")
            s.close()
            victim.wait_line(r"file descriptors are available again")
            check(True, f"{label}: tor's log says it recovered")
        tunnel.close()
        check(client.alive() and server.alive(), "both transports survived")
    return 0


if __name__ == "__main__":
    sys.exit(main())
