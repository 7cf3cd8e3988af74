# SPDX-License-Identifier: BSD-3-Clause
"""Shared pieces of the resource fault cases (descriptors, memory, bus).

The real binary ($TWP_BINARY) runs as tor runs it (managed, LOG lines on
stdout, read by a thread); a TCP echo stands for tor's ORPort. Every
process is stopped by its PID, every wait has a deadline. Exit codes:
0 passed, 1 failed, 77 skipped (the reason printed)."""

import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

DEADLINE = 30.0

# Reports of AddressSanitizer/UBSan in a transport's stderr: the case fails
# (checked when the transports are stopped, at the latest in Cleanup).
SANITIZER_RE = re.compile(r"ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:")
sanitizer_reports = []


def fail(why):
    print(f"FAIL: {why}", flush=True)
    sys.exit(1)


def skip(why):
    print(f"SKIP: {why}", flush=True)
    sys.exit(77)


def check(cond, why):
    if not cond:
        fail(why)
    print(f"ok: {why}", flush=True)


class Echo:
    """A TCP echo server on 127.0.0.1: tor's ORPort, as far as bytes go."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn):
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                conn.sendall(data)


class Transport:
    """One managed transport process; its stdout lines kept in order."""

    def __init__(self, args, env, preexec_fn=None):
        self.lines = []
        self.cond = threading.Condition()
        # stderr goes to a file, read when stopping: a sanitizer's report
        # there fails the case.
        self.stderr = tempfile.TemporaryFile()
        self.checked = False
        self.proc = subprocess.Popen([os.environ["TWP_BINARY"]] + args, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr, preexec_fn=preexec_fn)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            print(f"  [{self.proc.pid}] {line}", flush=True)
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)
            self.cond.notify_all()

    def wait_line(self, pattern, start=0, timeout=DEADLINE):
        """The index of the first line from @start matching @pattern."""
        deadline = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(self.lines):
                    if self.lines[i] is None:
                        fail(f"transport exited before a line matching {pattern!r}")
                    if re.search(pattern, self.lines[i]):
                        return i
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    fail(f"no line matching {pattern!r} within {timeout:.0f} s")
                self.cond.wait(left)

    def count(self, pattern):
        with self.cond:
            return sum(1 for l in self.lines if l is not None and re.search(pattern, l))

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.checked:
            return
        self.checked = True
        self.stderr.seek(0)
        for raw in self.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            print(f"  [{self.proc.pid} stderr] {line}", flush=True)
            if SANITIZER_RE.search(line):
                sanitizer_reports.append(f"{self.proc.pid}: {line}")
        self.stderr.close()


def pt_env(state_dir, extra):
    env = dict(os.environ)
    for key in list(env):
        if key.startswith("TOR_PT_"):
            del env[key]
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    env["XDG_RUNTIME_DIR"] = state_dir
    env["TOR_PT_MANAGED_TRANSPORT_VER"] = "1"
    env["TOR_PT_STATE_LOCATION"] = state_dir
    env.update(extra)
    return env


def start_server(tmp, orport, options="", extra=None, preexec_fn=None):
    state = tempfile.mkdtemp(dir=tmp)
    env = pt_env(state, {"TOR_PT_SERVER_TRANSPORTS": "websocket",
                         "TOR_PT_SERVER_BINDADDR": "websocket-127.0.0.1:0",
                         "TOR_PT_ORPORT": f"127.0.0.1:{orport}"})
    if options:
        env["TOR_PT_SERVER_TRANSPORT_OPTIONS"] = options
    env.update(extra or {})
    t = Transport(["--server", "--managed", "--log-level", "info"], env, preexec_fn)
    i = t.wait_line(r"^SMETHOD websocket ")
    t.port = int(t.lines[i].split()[2].rsplit(":", 1)[1])
    return t


def start_client(tmp, extra=None, preexec_fn=None):
    state = tempfile.mkdtemp(dir=tmp)
    env = pt_env(state, {"TOR_PT_CLIENT_TRANSPORTS": "websocket"})
    env.update(extra or {})
    t = Transport(["--client", "--managed", "--log-level", "info"], env, preexec_fn)
    i = t.wait_line(r"^CMETHOD websocket socks5 ")
    t.port = int(t.lines[i].split()[3].rsplit(":", 1)[1])
    return t


def socks_open(socks_port, url, timeout=DEADLINE):
    """A tunnel through the client's SOCKS5 port: (socket, reply code);
    reply None when the client closed without answering."""
    s = socket.create_connection(("127.0.0.1", socks_port), timeout=timeout)
    args = f"url={url}".encode()
    try:
        s.sendall(b"\x05\x01\x02")
        if recv_exact(s, 2) != b"\x05\x02":
            fail("the client did not choose username/password")
        user, pw = args[:255], args[255:] or b"\x00"
        s.sendall(bytes([1, len(user)]) + user + bytes([len(pw)]) + pw)
        if recv_exact(s, 2) != b"\x01\x00":
            fail("the client refused the bridge arguments")
        s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("192.0.2.3") + struct.pack(">H", 443))
        head = recv_exact(s, 4)
        code = head[1]
        recv_exact(s, 6)
    except (ConnectionError, PeerClosed):
        s.close()
        return None, None
    return s, code


class PeerClosed(Exception):
    pass


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise PeerClosed()
        out += chunk
    return out


def echo_check(s, size, seed):
    """Sends @size random bytes through the tunnel and checks they come
    back, byte for byte, in order."""
    data = random.Random(seed).randbytes(size)
    sent = 0
    got = b""
    s.setblocking(True)
    while len(got) < size:
        if sent < size:
            n = s.send(data[sent:sent + 16384])
            sent += n
        try:
            s.settimeout(0.0 if sent < size else DEADLINE)
            chunk = s.recv(65536)
        except (BlockingIOError, socket.timeout) as e:
            if sent >= size:
                fail(f"tunnel stalled after {len(got)} of {size} bytes ({e})")
            continue
        finally:
            s.settimeout(DEADLINE)
        if not chunk:
            fail(f"tunnel closed after {len(got)} of {size} bytes")
        got += chunk
    return got == data


def ws_handshake_status(port, timeout=DEADLINE):
    """The HTTP status a WebSocket upgrade to 127.0.0.1:@port gets, or None
    when the server closed without answering."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        head = b""
        while b"\r\n" not in head:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            head += chunk
        return int(head.split(b" ", 2)[1])


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def cpu_share(pid, seconds, during=None):
    """The share of one core @pid used over @seconds (a ratio, not a time);
    @during runs meanwhile (e.g. connection attempts)."""
    hz = os.sysconf("SC_CLK_TCK")
    t0, c0 = time.monotonic(), cpu_ticks(pid)
    end = t0 + seconds
    while time.monotonic() < end:
        if during is not None:
            during()
        time.sleep(0.2)
    return (cpu_ticks(pid) - c0) / hz / (time.monotonic() - t0)


def n_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def max_fd(pid):
    return max(int(x) for x in os.listdir(f"/proc/{pid}/fd"))


def wait_until(cond, what, timeout=DEADLINE, step=0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


def _interrupted(signum, frame):
    # Later signals must not interrupt the cleanup this starts.
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    print(f"interrupted by signal {signum}: cleaning up", flush=True)
    sys.exit(1)


class Cleanup:
    """Runs the registered actions in reverse on every way out, meson's
    timeout (SIGTERM) and ^C included, then fails the case if a transport's
    stderr held a sanitizer report."""

    def __init__(self):
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, _interrupted)
        self.tmp = tempfile.mkdtemp(prefix="twp-faults-")
        self.actions = []

    def __enter__(self):
        return self

    def add(self, fn):
        self.actions.append(fn)

    def __exit__(self, *exc):
        for fn in reversed(self.actions):
            try:
                fn()
            except Exception as e:  # cleanup goes on
                print(f"cleanup: {e}", flush=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
        if sanitizer_reports:
            for report in sanitizer_reports:
                print(f"FAIL: sanitizer report: {report}", flush=True)
            sys.exit(1)
        return False
