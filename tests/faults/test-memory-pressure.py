#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""A server under a cgroup memory limit sheds new connections (HTTP 503,
counted as memory_pressure) once its cgroup's working set passes 90% of
the limit, instead of being OOM-killed: a ballast process in the same
cgroup takes the memory; the open tunnel carries every byte, tor's log
says it once, and when the ballast ends new WebSockets get 101 again.
Skipped (77) where no memory cgroup can be created (not root, no
controller)."""

import os
import signal
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resfaults import (Cleanup, Echo, check, echo_check, skip, socks_open, start_client, start_server,
                       wait_until, ws_handshake_status)

LIMIT = 256 << 20


def limited_cgroup(path, limit_file):
    """Creates @path with LIMIT in @limit_file; removes it again (then
    skips) when the limit cannot be set."""
    os.mkdir(path)
    try:
        with open(os.path.join(path, limit_file), "w") as f:
            f.write(str(LIMIT))
    except OSError as e:
        os.rmdir(path)
        skip(f"cannot limit a memory cgroup here: {e}")
    return path


def make_cgroup(name):
    """(directory, v2) of a new memory cgroup with LIMIT, or skip."""
    v1 = "/sys/fs/cgroup/memory"
    v2 = "/sys/fs/cgroup"
    try:
        if os.path.isfile(os.path.join(v1, "memory.limit_in_bytes")):
            return limited_cgroup(os.path.join(v1, name), "memory.limit_in_bytes"), False
        if os.path.isfile(os.path.join(v2, "cgroup.controllers")):
            with open(os.path.join(v2, "cgroup.subtree_control")) as f:
                if "memory" not in f.read().split():
                    skip("cgroup v2 without the memory controller enabled for children")
            return limited_cgroup(os.path.join(v2, name), "memory.max"), True
    except OSError as e:
        skip(f"cannot create a memory cgroup here: {e}")
    skip("no cgroup memory controller mounted")


def usage(path, v2):
    def read(name):
        with open(os.path.join(path, name)) as f:
            return f.read()
    charged = int(read("memory.current" if v2 else "memory.usage_in_bytes"))
    key = "inactive_file" if v2 else "total_inactive_file"
    inactive = 0
    for line in read("memory.stat").splitlines():
        k, _, v = line.partition(" ")
        if k == key:
            inactive = int(v)
    return charged - inactive


def metric(sock_path, name):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(sock_path)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        body = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    return None


def main():
    with Cleanup() as c:
        path, v2 = make_cgroup(f"twp-faults-{os.getpid()}")
        c.add(lambda: os.rmdir(path))
        procs = os.path.join(path, "cgroup.procs")

        def enter():
            with open(procs, "w") as f:
                f.write(str(os.getpid()))

        echo = Echo()
        c.add(echo.sock.close)
        metrics = os.path.join(c.tmp, "metrics.sock")
        server = start_server(c.tmp, echo.port, options=f"websocket:metrics={metrics}", preexec_fn=enter)
        c.add(server.stop)
        client = start_client(c.tmp)
        c.add(client.stop)
        url = f"ws://127.0.0.1:{server.port}/"

        check(ws_handshake_status(server.port) == 101, "below the threshold: 101")
        tunnel, code = socks_open(client.port, url)
        check(tunnel is not None and code == 0, "a tunnel opens")
        check(echo_check(tunnel, 256 * 1024, 1), "it carries 256 KiB")

        # The ballast fills the cgroup to 94% of its limit: past the 90%
        # threshold, short of the OOM killer. Its interpreter is loaded
        # first, so that what it adds is measured, not guessed.
        ballast = subprocess.Popen([sys.executable, "-c",
                                    "import sys; print('started', flush=True); "
                                    "b = bytearray(b'\\x01') * int(sys.stdin.readline()); "
                                    "print('ready', flush=True); sys.stdin.read()"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, preexec_fn=enter)
        c.add(lambda: ballast.poll() is None and (os.kill(ballast.pid, signal.SIGKILL), ballast.wait()))
        check(ballast.stdout.readline().strip() == b"started", "the ballast process runs in the cgroup")
        ballast.stdin.write(b"%d\n" % (int(LIMIT * 0.94) - usage(path, v2)))
        ballast.stdin.flush()
        check(ballast.stdout.readline().strip() == b"ready", "the ballast holds its memory")
        print(f"cgroup working set {usage(path, v2) >> 20} MiB of {LIMIT >> 20} MiB", flush=True)

        # The server reads usage at most once a second: the first 503 comes
        # within a second or two.
        wait_until(lambda: ws_handshake_status(server.port) == 503, "a 503 under memory pressure")
        for _ in range(5):
            check(ws_handshake_status(server.port) == 503, "new WebSockets keep getting 503")
        s, code = socks_open(client.port, url)
        check(s is None or code != 0, "a new tunnel through the client is refused")
        if s is not None:
            s.close()
        check(echo_check(tunnel, 256 * 1024, 2), "the open tunnel still carries every byte")
        check(server.alive(), "the server was not killed")
        refused = metric(metrics, 'tor_websocket_proxy_handshakes_refused_total{reason="memory_pressure"}')
        check(refused is not None and refused >= 6, f"metrics count the refusals (memory_pressure {refused})")
        server.wait_line(r"LOG SEVERITY=warning MESSAGE=.*memory use is at")
        check(server.count(r"LOG SEVERITY=warning MESSAGE=.*memory use is at") == 1,
              "tor's log says it once, not per connection")

        os.kill(ballast.pid, signal.SIGKILL)
        ballast.wait()
        wait_until(lambda: ws_handshake_status(server.port) == 101, "101 again once the ballast is gone")
        server.wait_line(r"memory use is down to")
        check(True, "tor's log says it recovered")
        s, code = socks_open(client.port, url)
        check(s is not None and code == 0 and echo_check(s, 64 * 1024, 3), "a new tunnel carries every byte")
        s.close()
        tunnel.close()
        check(server.alive() and client.alive(), "both transports survived")
        # The cgroup can only be removed once empty.
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
