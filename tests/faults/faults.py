# SPDX-License-Identifier: BSD-3-Clause
"""Shared harness of the fault suite (tests/faults/, suite `faults`).

Each case is one script, one meson test (protocol `exitcode`: 0 passed,
1 failed, 77 skipped with the reason printed). A case builds what it needs
from these pieces, all on 127.0.0.1 and stdlib only:

- Case: the work directory, `check()` lines printed as TAP-like text, the
  exit status, and cleanup on every path (every process we started is
  stopped by PID, through tests/tor/tor_network.py's registry; a sanitizer
  report in a transport's stderr fails the case; the work directory is
  kept and named when the case fails).
- SessionBus: a private dbus-daemon, and the client's bridge state read
  with gdbus (State, LastFailureReason, LastFailureDetails).
- ManagedPT: the real binary started as tor starts it (pt-spec v1
  environment, stdin kept open), its stdout parsed (CMETHOD/SMETHOD, LOG
  lines: what tor would write to its log).
- FakeExtOrPort: tor's side of the Extended ORPort (SAFE_COOKIE, commands,
  OKAY), then an echo; its `mode` can be switched to inject faults.
- socks_open()/Tunnel: a SOCKS5 connection through the client transport
  carrying the bridge line's url= as tor does; every byte echoed is checked.
  Pump: a thread echoing through tunnels that must not be hit.

Timeouts: every wait here takes a deadline; cases keep them generous (the
machine is shared) and never assert how fast something was.
"""

import hashlib
import hmac
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tor"))
import tor_network as tn  # noqa: E402  (process registry, stop by PID)

LOOPBACK = "127.0.0.1"
SKIP = 77

# Bridge State on D-Bus (data/io.github.TorWebSocketProxy1.Bridge.xml).
BRIDGE_IDLE, BRIDGE_CONNECTING, BRIDGE_CONNECTED, BRIDGE_FAILING = 10, 20, 30, 40


# What the sanitizers (the clang build, meson test --setup=asan) print.
SANITIZER_RE = re.compile(r"ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:")


class CaseError(Exception):
    """A step of a case could not be carried out (counts as a failure)."""


def binary():
    path = os.environ.get("TWP_BINARY")
    if not path or not os.access(path, os.X_OK):
        raise CaseError("TWP_BINARY is not set to the built tor-websocket-proxy")
    return path


def wait_until(what, predicate, timeout, interval=0.1):
    """Poll predicate until it returns something true; CaseError after
    timeout seconds. Returns the predicate's value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise CaseError("no %s after %.0f s" % (what, timeout))
        time.sleep(interval)


class Case:
    """One fault case: `with Case("name") as case: ...` then case.exit()."""

    def __init__(self, name):
        self.name = name
        self.failures = 0
        self.count = 0
        self.workdir = tempfile.mkdtemp(prefix="twp-faults-%s-" % name)
        tn.become_subreaper()
        tn.install_signal_handlers()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and not issubclass(exc_type, SystemExit):
            self.failures += 1
            print("not ok - %s: %s" % (self.name, exc))
            traceback.print_exception(exc_type, exc, tb, file=sys.stdout)
        tn.stop_all()
        left = tn.leftover_processes()
        if left:
            self.failures += 1
            print("not ok - processes left running: %s" % left)
        for name in sorted(os.listdir(self.workdir)):
            if name.endswith(".stderr"):
                with open(self.path(name), errors="replace") as f:
                    reports = [l for l in f if SANITIZER_RE.search(l)]
                if reports:
                    self.failures += 1
                    print("not ok - %s: %s" % (name, reports[0].strip()))
        if self.failures:
            print("# work directory kept: %s" % self.workdir)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
        sys.stdout.flush()
        return exc_type is not None and not issubclass(exc_type, SystemExit)

    def path(self, *parts):
        return os.path.join(self.workdir, *parts)

    def note(self, text):
        for line in str(text).splitlines():
            print("# " + line)
        sys.stdout.flush()

    def check(self, cond, desc, diag=None):
        self.count += 1
        print("%s %d - %s" % ("ok" if cond else "not ok", self.count, desc))
        if not cond:
            self.failures += 1
            if diag:
                self.note(diag)
        sys.stdout.flush()
        return cond

    def skip(self, reason):
        """End the case as skipped (exit 77), with the reason printed."""
        print("# SKIP %s" % reason)
        tn.stop_all()
        shutil.rmtree(self.workdir, ignore_errors=True)
        sys.stdout.flush()
        os._exit(SKIP)

    def exit(self):
        print("# %s: %d checks, %d failed" % (self.name, self.count, self.failures))
        sys.exit(1 if self.failures else 0)


# --- D-Bus ----------------------------------------------------------------

class SessionBus:
    """A private session bus (dbus-daemon of our own, stopped by PID)."""

    def __init__(self, case):
        self.proc = tn.spawn(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                             cwd=case.workdir, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode().strip() if ready else ""
        if not line:
            raise CaseError("dbus-daemon printed no address within 30 s")
        self.address = line

    def gdbus(self, *args, timeout=30):
        r = subprocess.run(["gdbus", "call", "--address", self.address, "--timeout", "20"] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
        if r.returncode != 0:
            raise CaseError("gdbus %s: %s" % (" ".join(args[:6]), r.stderr.strip()))
        return r.stdout

    def bridge_paths(self, pid):
        out = self.gdbus("--dest", "io.github.TorWebSocketProxy1.instance%d" % pid,
                         "--object-path", "/io/github/TorWebSocketProxy1",
                         "--method", "org.freedesktop.DBus.ObjectManager.GetManagedObjects")
        return sorted(set(re.findall(r"'(/io/github/TorWebSocketProxy1/bridge/[^']+)'", out)))

    def properties(self, pid, path, iface):
        """The object's properties as {name: text}: numbers as int, strings
        unquoted (enough for the State / Failure* properties we read)."""
        out = self.gdbus("--dest", "io.github.TorWebSocketProxy1.instance%d" % pid,
                         "--object-path", path,
                         "--method", "org.freedesktop.DBus.Properties.GetAll", iface)
        props = {}
        for name, value in re.findall(r"'(\w+)': <((?:[^<>']|'(?:[^'\\]|\\.)*')*)>", out):
            m = re.fullmatch(r"(?:u?int\d+|byte) (-?\d+)|(-?\d+)", value)
            if m:
                props[name] = int(m.group(1) or m.group(2))
            elif value.startswith("'"):
                props[name] = value[1:-1]
            else:
                props[name] = value
        return props

    def bridges(self, pid):
        """The client's bridges as {url: properties} (GetUrl per object)."""
        out = {}
        for path in self.bridge_paths(pid):
            url = self.gdbus("--dest", "io.github.TorWebSocketProxy1.instance%d" % pid,
                             "--object-path", path,
                             "--method", "io.github.TorWebSocketProxy1.Bridge.GetUrl")
            m = re.search(r"'([^']*)'", url)
            props = self.properties(pid, path, "io.github.TorWebSocketProxy1.Bridge")
            out[m.group(1) if m else path] = props
        return out

    def bridge(self, pid):
        """The client's only bridge object's properties (None while it has none)."""
        paths = self.bridge_paths(pid)
        if not paths:
            return None
        if len(paths) != 1:
            raise CaseError("expected one bridge object, found %d" % len(paths))
        return self.properties(pid, paths[0], "io.github.TorWebSocketProxy1.Bridge")

    def transport(self, pid):
        return self.properties(pid, "/io/github/TorWebSocketProxy1/Transport",
                               "io.github.TorWebSocketProxy1.Transport")


# --- the transport, as tor runs it ------------------------------------------

class ManagedPT:
    """tor-websocket-proxy --client|--server --managed, with tor's environment.

    stdout is read by a thread: `lines` (every line) and `logs()` (the
    MESSAGE of LOG lines, as tor would log them). stderr goes to a file."""

    def __init__(self, case, name, role, args=(), env=None, bus=None):
        self.case = case
        self.name = name
        self.role = role
        self.lines = []
        self._lock = threading.Lock()
        state = case.path(name + "-state")
        os.makedirs(state, exist_ok=True)
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("TOR_PT_")}
        full_env.update({
            "TOR_PT_MANAGED_TRANSPORT_VER": "1",
            "TOR_PT_STATE_LOCATION": state,
            "TOR_PT_EXIT_ON_STDIN_CLOSE": "1",
            "DBUS_SESSION_BUS_ADDRESS": bus.address if bus else "unix:path=/nonexistent",
        })
        full_env.update(env or {})
        self.stderr = open(case.path(name + ".stderr"), "wb")
        self.proc = tn.spawn([binary(), "--" + role, "--managed", "--log-level=info"] + list(args),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                             env=full_env)
        self.pid = self.proc.pid
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        done = "CMETHODS DONE" if role == "client" else "SMETHODS DONE"
        self.wait_line(re.escape(done), 30)
        method = "CMETHOD websocket socks5 " if role == "client" else "SMETHOD websocket "
        found = [l for l in self.lines if l.startswith(method)]
        if not found:
            raise CaseError("%s: no %r line before %s" % (name, method.strip(), done))
        addr = found[0][len(method):].split()[0]
        self.port = int(addr.rsplit(":", 1)[1])

    @classmethod
    def client(cls, case, name, args=(), bus=None, env=None):
        e = {"TOR_PT_CLIENT_TRANSPORTS": "websocket"}
        e.update(env or {})
        return cls(case, name, "client", args, e, bus)

    @classmethod
    def server(cls, case, name, port, extor, options=(), args=(), env=None):
        """A server on 127.0.0.1:port (0: any) relaying to extor (a
        FakeExtOrPort, or (address, cookie path)); options: k=v strings as
        ServerTransportOptions gives them."""
        ext_addr, cookie = (extor.address, extor.cookie) if hasattr(extor, "cookie") else extor
        e = {
            "TOR_PT_SERVER_TRANSPORTS": "websocket",
            "TOR_PT_SERVER_BINDADDR": "websocket-%s:%d" % (LOOPBACK, port),
            "TOR_PT_ORPORT": "%s:%d" % (LOOPBACK, 1),
            "TOR_PT_EXTENDED_SERVER_PORT": ext_addr,
            "TOR_PT_AUTH_COOKIE_FILE": cookie,
        }
        if options:
            e["TOR_PT_SERVER_TRANSPORT_OPTIONS"] = ";".join("websocket:" + o for o in options)
        e.update(env or {})
        return cls(case, name, "server", args, e)

    def _read(self):
        for raw in self.proc.stdout:
            with self._lock:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def logs(self):
        """LOG lines as 'severity: message' (tor writes them to its log)."""
        with self._lock:
            lines = list(self.lines)
        out = []
        for l in lines:
            m = re.match(r'LOG SEVERITY=(\w+) MESSAGE=(?:"((?:[^"\\]|\\.)*)"|(\S+))', l)
            if m:
                out.append("%s: %s" % (m.group(1), m.group(2) if m.group(2) is not None else m.group(3)))
        return out

    def wait_line(self, pattern, timeout):
        """Wait for a stdout line matching pattern (regex); returns it."""
        regex = re.compile(pattern)

        def find():
            with self._lock:
                for l in self.lines:
                    if regex.search(l):
                        return l
            if self.proc.poll() is not None:
                raise CaseError("%s exited (status %s) waiting for %r"
                                % (self.name, self.proc.returncode, pattern))
            return None
        return wait_until("%r from %s" % (pattern, self.name), find, timeout)

    def wait_log(self, pattern, timeout, start=0):
        """Wait for a LOG message matching pattern among logs()[start:]."""
        regex = re.compile(pattern)

        def find():
            for l in self.logs()[start:]:
                if regex.search(l):
                    return l
            if self.proc.poll() is not None:
                raise CaseError("%s exited (status %s)" % (self.name, self.proc.returncode))
            return None
        return wait_until("log %r from %s" % (pattern, self.name), find, timeout)

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        """SIGKILL, as a crash or the OOM killer would end it."""
        self.proc.kill()
        self.proc.wait(timeout=30)
        tn.stop_process(self.proc)

    def stop(self):
        tn.stop_process(self.proc)


# --- tor's Extended ORPort ----------------------------------------------------

EXTOR_COOKIE_HEADER = b"! Extended ORPort Auth Cookie !\x0a"


class FakeExtOrPort:
    """tor 0.4.9's side of the Extended ORPort (PT-CHECKLIST section 5),
    then an echo of the OR payload. Threads; mode may change at any time:

    echo   like tor, then echo
    reset  read the auth type and nonce, then reset the connection (RST)
    stall  send the auth types, then never another byte
    closed stop listening (connections are refused) until reopen()

    counts[mode] counts connections accepted in each mode, okays the OKAYs
    sent."""

    def __init__(self, case, port=0):
        self.case = case
        self.cookie = case.path("extended_orport_auth_cookie")
        self.secret = os.urandom(32)
        with open(self.cookie, "wb") as f:
            f.write(EXTOR_COOKIE_HEADER + self.secret)
        os.chmod(self.cookie, 0o600)
        self.mode = "echo"
        self.counts = {}
        self.okays = 0
        self.useraddrs = []
        self._lock = threading.Lock()
        self._conns = []
        self._listener = None
        self.port = port
        self.reopen()

    @property
    def address(self):
        return "%s:%d" % (LOOPBACK, self.port)

    def reopen(self, port=None):
        """Listen (again) on port (default: the same one as before)."""
        if port is not None:
            self.port = port
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((LOOPBACK, self.port))
        s.listen(128)
        self.port = s.getsockname()[1]
        self._listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def close_listener(self):
        """Stop listening: new connections are refused (tor is gone, or
        listens elsewhere now). Accepted connections carry on."""
        s, self._listener = self._listener, None
        if s is not None:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.close_listener()
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.close()
            except OSError:
                pass

    def _accept(self, listener):
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            mode = self.mode
            with self._lock:
                self.counts[mode] = self.counts.get(mode, 0) + 1
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn, mode), daemon=True).start()

    @staticmethod
    def _recv(conn, n):
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def _serve(self, conn, mode):
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.sendall(b"\x01\x00")                 # SAFE_COOKIE, end of list
            if mode == "stall":
                while conn.recv(65536):
                    pass
                return
            if self._recv(conn, 1) != b"\x01":
                return
            cnonce = self._recv(conn, 32)
            if mode == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            snonce = os.urandom(32)
            shash = hmac.new(self.secret, b"ExtORPort authentication server-to-client hash"
                             + cnonce + snonce, hashlib.sha256).digest()
            conn.sendall(shash + snonce)
            chash = hmac.new(self.secret, b"ExtORPort authentication client-to-server hash"
                             + cnonce + snonce, hashlib.sha256).digest()
            if not hmac.compare_digest(self._recv(conn, 32), chash):
                conn.sendall(b"\x00")
                return
            conn.sendall(b"\x01")
            while True:
                cmd, length = struct.unpack(">HH", self._recv(conn, 4))
                body = self._recv(conn, length)
                if cmd == 0x0001:
                    self.useraddrs.append(body.decode(errors="replace"))
                if cmd == 0x0000:
                    break
            conn.sendall(b"\x10\x00\x00\x00")         # OKAY
            with self._lock:
                self.okays += 1
            while True:
                data = conn.recv(65536)
                if not data:
                    conn.shutdown(socket.SHUT_WR)
                    return
                conn.sendall(data)
        except (OSError, EOFError):
            pass
        finally:
            conn.close()
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)


# --- tunnels through the client ---------------------------------------------

class SocksError(Exception):
    def __init__(self, reply):
        super().__init__("SOCKS reply %d" % reply)
        self.reply = reply


def socks_open(socks_port, url, timeout=60, bridge=(LOOPBACK, 9)):
    """A tunnel as tor opens one: SOCKS5 with the bridge line's arguments
    as RFC 1929 user name (PT-CHECKLIST C9). Returns the socket once the
    client replied success; raises SocksError with the reply code."""
    s = socket.create_connection((LOOPBACK, socks_port), timeout=timeout)
    try:
        s.sendall(b"\x05\x02\x00\x02")
        if FakeExtOrPort._recv(s, 2) != b"\x05\x02":
            raise CaseError("SOCKS: the client did not choose user/password")
        user = ("url=" + url).encode()
        s.sendall(b"\x01" + bytes([len(user)]) + user + b"\x01\x00")
        if FakeExtOrPort._recv(s, 2) != b"\x01\x00":
            raise CaseError("SOCKS: arguments refused")
        s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(bridge[0]) + struct.pack(">H", bridge[1]))
        reply = FakeExtOrPort._recv(s, 10)
        if reply[1] != 0:
            raise SocksError(reply[1])
        return s
    except BaseException:
        s.close()
        raise


class Tunnel:
    """One tunnel through client -> server -> FakeExtOrPort (echo): every
    byte sent must come back, in order."""

    def __init__(self, socks_port, url, timeout=60):
        self.url = url
        self.sock = socks_open(socks_port, url, timeout)
        self.sock.settimeout(timeout)
        self.sent = 0

    def echo(self, size):
        """Send size random bytes and check they all come back. Returns
        None, or what went wrong."""
        data = os.urandom(size)
        got = bytearray()
        try:
            self.sock.sendall(data)
            while len(got) < size:
                chunk = self.sock.recv(min(65536, size - len(got)))
                if not chunk:
                    return "EOF after %d of %d bytes" % (len(got), size)
                got += chunk
        except OSError as e:
            return "%s after %d of %d bytes" % (e, len(got), size)
        self.sent += size
        if bytes(got) != data:
            return "the %d bytes echoed differ from those sent" % size
        return None

    def wait_closed(self, timeout):
        """Wait for EOF or a reset; True if the tunnel ended in time."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
            return True
        except socket.timeout:
            return False
        except OSError:
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def free_port():
    return tn.free_port()


# --- a real tor's transport ---------------------------------------------------

# For a real tor's torrc: a directory authority nobody listens for, so that
# tor never reaches the real ones; the fingerprints only need to be well
# formed.
FAKE_AUTHORITY = ("DirAuthority fake orport=1 no-v2 v3ident=%s 127.0.0.1:1 %s"
                  % ("A" * 40, "B" * 40))

def listening_ports(pid):
    """TCP ports pid listens on, from /proc (IPv4)."""
    inodes = set()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                m = re.match(r"socket:\[(\d+)\]", os.readlink("/proc/%d/fd/%s" % (pid, fd)))
            except OSError:
                continue
            if m:
                inodes.add(m.group(1))
    except OSError:
        return []
    ports = []
    with open("/proc/%d/net/tcp" % pid) as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                ports.append(int(fields[1].split(":")[1], 16))
    return ports


def transport_of(tor):
    """(PID, SOCKS port) of the transport tor runs, once it listens."""
    for pid in tn._children_of(tor.pid):
        if tn._exe_of(pid) == os.path.realpath(binary()):
            ports = listening_ports(pid)
            if ports:
                return pid, ports[0]
    return None


class Pump(threading.Thread):
    """Echoes 16 KiB at a time through tunnels, in turn, until stopped;
    counts the bytes and stops at the first error (kept in errors)."""

    def __init__(self, tunnels):
        super().__init__(daemon=True)
        self.tunnels = tunnels
        self.bytes = 0
        self.errors = []
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            for t in self.tunnels:
                err = t.echo(16 * 1024)
                if err:
                    self.errors.append(err)
                    return
                self.bytes += 16 * 1024
            # Let the other threads of the case (and the machine) breathe.
            time.sleep(0.01)

    def stop(self):
        self.stopping.set()
        self.join(60)
