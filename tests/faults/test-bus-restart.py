#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""The session bus goes away (its dbus-daemon killed) and comes back at
the same address: the client transport goes on carrying tunnels, says so
in tor's log, and publishes its name and objects again on the new bus
without a restart (same PID)."""

import os
import select
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resfaults import Cleanup, Echo, check, echo_check, skip, socks_open, start_client, start_server, wait_until

GDBUS = shutil.which("gdbus")
DAEMON = shutil.which("dbus-daemon")


def start_bus(address):
    bus = subprocess.Popen([DAEMON, "--session", "--nofork", "--nopidfile", f"--address={address}",
                            "--print-address"], stdout=subprocess.PIPE)
    ready, _, _ = select.select([bus.stdout], [], [], 30)
    line = bus.stdout.readline().decode().strip() if ready else ""
    if not line:
        bus.kill()
        bus.wait()
        raise RuntimeError("dbus-daemon did not start")
    return bus


def stop_bus(bus):
    if bus.poll() is None:
        os.kill(bus.pid, signal.SIGTERM)
        bus.wait(10)


def gdbus(address, *args):
    r = subprocess.run([GDBUS, "call", "--address", address] + list(args), capture_output=True, text=True,
                       timeout=20)
    return r.stdout if r.returncode == 0 else None


def published(address, name):
    names = gdbus(address, "--dest", "org.freedesktop.DBus", "--object-path", "/org/freedesktop/DBus",
                  "--method", "org.freedesktop.DBus.ListNames")
    if names is None or f"'{name}'" not in names:
        return None
    return gdbus(address, "--dest", name, "--object-path", "/io/github/TorWebSocketProxy1",
                 "--method", "org.freedesktop.DBus.ObjectManager.GetManagedObjects")


def main():
    if GDBUS is None or DAEMON is None:
        skip("gdbus or dbus-daemon missing")
    with Cleanup() as c:
        address = f"unix:path={c.tmp}/bus"
        bus = start_bus(address)
        c.add(lambda: stop_bus(bus))
        echo = Echo()
        c.add(echo.sock.close)
        server = start_server(c.tmp, echo.port)
        c.add(server.stop)
        client = start_client(c.tmp, {"DBUS_SESSION_BUS_ADDRESS": address})
        c.add(client.stop)
        name = f"io.github.TorWebSocketProxy1.instance{client.proc.pid}"
        url = f"ws://127.0.0.1:{server.port}/"

        tunnel, code = socks_open(client.port, url)
        check(tunnel is not None and code == 0, "a tunnel opens")
        objects = wait_until(lambda: published(address, name), "the transport's name on the bus")
        check("/io/github/TorWebSocketProxy1/Transport" in objects and "/bridge/" in objects,
              "its Transport and bridge objects are exported")

        stop_bus(bus)
        client.wait_line(r"LOG SEVERITY=notice MESSAGE=.*the session bus connection closed")
        check(True, "tor's log says the bus went away")
        check(echo_check(tunnel, 256 * 1024, 1), "the open tunnel carries every byte without the bus")
        s, code = socks_open(client.port, url)
        check(s is not None and code == 0 and echo_check(s, 64 * 1024, 2), "a new tunnel works without the bus")
        s.close()

        # dbus-daemon removed its socket as it ended: a new one binds the
        # same path.
        bus = start_bus(address)
        objects = wait_until(lambda: published(address, name), "the name on the bus that came back")
        check("/io/github/TorWebSocketProxy1/Transport" in objects and "/bridge/" in objects,
              "the objects are exported again, by the same process")
        client.wait_line(r"the session bus is back")
        check(client.count(r"the session bus connection closed") == 1, "the loss was said once")
        check(echo_check(tunnel, 64 * 1024, 3), "the first tunnel still carries every byte")
        props = gdbus(address, "--dest", name, "--object-path", "/io/github/TorWebSocketProxy1/Transport",
                      "--method", "org.freedesktop.DBus.Properties.Get",
                      "io.github.TorWebSocketProxy1.Transport", "State")
        check(props is not None, f"the Transport answers on the new bus ({props and props.strip()})")
        tunnel.close()
        check(client.alive(), "the transport was never restarted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
