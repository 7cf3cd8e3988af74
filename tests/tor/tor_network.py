# SPDX-License-Identifier: BSD-3-Clause
"""A private Tor network on 127.0.0.1, with our pluggable transport in it.

Builds and runs, from Debian's tor package and as the current user under
one work directory: a directory authority (keys from tor-gencert), a few
relays (exits whose policy accepts only 127.0.0.0/8), bridges running our
server transport behind the Extended ORPort, and clients running our client
transport. Every address is 127.0.0.1; no system tor is involved.

Every process started here is registered and stopped by PID (tor first,
then the transport processes tor had launched) by TorNetwork.stop(), by an
atexit hook and by the signal handlers install_signal_handlers() sets.

Stdlib only: used by tests/tor/test-tor-network.py and tests/tor/demo.py.
"""

import atexit
import hashlib
import http.server
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

LOOPBACK = "127.0.0.1"

BOOTSTRAP_RE = re.compile(r"Bootstrapped (\d+)% \(([^)]*)\): (.*)$")


class TorNetworkError(Exception):
    """Something in the private network did not come up as expected."""


class Interrupted(BaseException):
    """A signal asked us to stop; unwinds through every finally block."""

    def __init__(self, signum):
        super().__init__("interrupted by signal %d" % signum)
        self.signum = signum


# --- processes ----------------------------------------------------------

_PROCS = []           # every Popen we started, in start order
_PROCS_LOCK = threading.Lock()
_STOPPED = []         # (PID, executable) of stopped tors and their transports


def _children_of(pid):
    """PIDs whose parent is pid (the transports tor launched)."""
    kids = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                kids.extend(int(x) for x in f.read().split())
    except OSError:
        pass
    return kids


def _pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            # A zombie has exited; its parent (init) reaps it.
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _exe_of(pid):
    try:
        return os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return None


def _reap(pid):
    # Orphaned transports are reparented to us (see become_subreaper()).
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def become_subreaper():
    """Adopt orphaned descendants (the transports outliving their tor), so
    that they are reaped here instead of staying zombies under a PID 1 that
    may not reap (containers)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)          # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def spawn(args, **kwargs):
    """Start a process and register it for stop_all()."""
    proc = subprocess.Popen(args, **kwargs)
    with _PROCS_LOCK:
        _PROCS.append(proc)
    return proc


def stop_process(proc, grace=5.0):
    """SIGTERM proc, then the transports it had started, each by PID.

    Tor itself SIGTERMs its transports and they also get a PDEATHSIG, but
    a lingering orphan would keep a port bound: we check each one and
    SIGKILL what is still there after the grace period.
    """
    if proc.poll() is None:
        kids = [(k, _exe_of(k)) for k in _children_of(proc.pid)]
        _STOPPED.extend(kids)
        _STOPPED.append((proc.pid, _exe_of(proc.pid)))
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        except ProcessLookupError:
            pass
        for pid, exe in kids:
            deadline = time.monotonic() + grace
            # Only a PID still running the same executable is ours.
            while _pid_alive(pid) and _exe_of(pid) == exe and time.monotonic() < deadline:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            if _pid_alive(pid) and _exe_of(pid) == exe:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                time.sleep(0.1)
            _reap(pid)
    with _PROCS_LOCK:
        if proc in _PROCS:
            _PROCS.remove(proc)


def leftover_processes():
    """PIDs we started or saw tor start that are still running (should be
    empty after stop_all())."""
    with _PROCS_LOCK:
        pids = [p.pid for p in _PROCS if p.poll() is None]
    return pids + [pid for pid, exe in _STOPPED if _pid_alive(pid) and _exe_of(pid) == exe]


def stop_all():
    """Stop every process we started, newest first (clients before relays)."""
    while True:
        with _PROCS_LOCK:
            if not _PROCS:
                return
            proc = _PROCS[-1]
        stop_process(proc)


atexit.register(stop_all)


def install_signal_handlers():
    """SIGINT/SIGTERM/SIGHUP unwind the stack (finally blocks run) and exit."""
    def handler(signum, frame):
        # Later signals while cleaning up must not interrupt the cleanup.
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signum)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, handler)


# --- ports and helpers --------------------------------------------------

_USED_PORTS = set()


def free_port():
    """An unused TCP port on 127.0.0.1 (never one we handed out before).

    tor binds these itself, and the torrc files (and the authorities' view
    of the network) must name them before it starts, so port 0 cannot serve:
    another process may take the port in between, a race we accept here.
    It is kept small by picking below the kernel's ephemeral range (as
    tests/twp-test-utils.c does), where outgoing connections and port 0
    listeners never land.
    """
    low = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    for attempt in range(200):
        if low > 2048 and attempt < 100:
            candidate = random.randrange(low // 2, low)
        else:
            candidate = 0    # a machine whose range starts low: any port
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((LOOPBACK, candidate))
            except OSError:
                continue
            port = s.getsockname()[1]
        if port not in _USED_PORTS:
            _USED_PORTS.add(port)
            return port
    raise TorNetworkError("no free TCP port on %s" % LOOPBACK)


def _check_no_space(what, value):
    # Tor splits torrc lines and plugin exec lines on whitespace (#29874).
    if re.search(r"\s", value):
        raise TorNetworkError("%s must not contain whitespace: %r" % (what, value))


def make_test_ca(directory, name="localhost"):
    """A test CA and a server certificate for name/127.0.0.1, with openssl.

    Returns (ca_pem, cert_pem, key_pem) paths."""
    os.makedirs(directory, exist_ok=True)
    p = lambda f: os.path.join(directory, f)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run("req", "-x509", *ec, "-keyout", p("ca.key"), "-out", p("ca.pem"), "-days", "2",
        "-subj", "/CN=tor-websocket-proxy test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", p("server.key"), "-out", p("server.csr"),
        "-subj", "/CN=" + name)
    with open(p("server.ext"), "w") as f:
        f.write("subjectAltName=DNS:%s,IP:127.0.0.1\n"
                "basicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\n" % name)
    run("x509", "-req", "-in", p("server.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"),
        "-CAcreateserial", "-out", p("server.pem"), "-days", "2", "-extfile", p("server.ext"))
    return p("ca.pem"), p("server.pem"), p("server.key")


# --- one tor process ----------------------------------------------------

class TorNode:
    """One tor instance: its directory, torrc, ports, process and logs."""

    def __init__(self, network, name, role):
        self.network = network
        self.name = name
        self.role = role
        self.dir = os.path.join(network.workdir, name)
        self.data_dir = os.path.join(self.dir, "data")
        self.torrc = os.path.join(self.dir, "torrc")
        self.notice_log = os.path.join(self.dir, "notice.log")
        self.info_log = os.path.join(self.dir, "info.log")
        self.debug_log = None
        self.ports = {}
        self.proc = None
        self.started_at = None
        self._log_offset = 0
        self._progress = -1
        os.makedirs(self.data_dir, mode=0o700, exist_ok=True)

    def write_torrc(self, lines):
        common = [
            "TestingTorNetwork 1",
            "DataDirectory " + self.data_dir,
            "Nickname " + re.sub(r"[^A-Za-z0-9]", "", self.name)[:19],
            "RunAsDaemon 0",
            "ShutdownWaitLength 0",
            "Log notice file " + self.notice_log,
            "Log info file " + self.info_log,
            "SafeLogging 0",
            "ProtocolWarnings 1",
            # Never probe for or bind a public address: everything is loopback.
            "Address 127.0.0.1",
            "AddressDisableIPv6 1",
            "ClientUseIPv6 0",
            # Rapid bootstrap settings (as chutney's): see the authority below.
            "AssumeReachable 1",
            "PathsNeededToBuildCircuits 0.25",
            "TestingDirAuthVoteExit *",
            "TestingDirAuthVoteGuard *",
            "TestingMinExitFlagThreshold 0",
            "V3AuthNIntervalsValid 2",
            self.network.dir_authority_line,
        ]
        with open(self.torrc, "w") as f:
            f.write("\n".join(common + lines) + "\n")

    def start(self):
        self.started_at = time.monotonic()
        with open(os.path.join(self.dir, "stdout.log"), "wb") as out:
            # No defaults file: /etc/tor/torrc-defaults must not leak in.
            empty = os.path.join(self.dir, "empty-torrc")
            open(empty, "w").close()
            self.proc = spawn(["tor", "--defaults-torrc", empty, "-f", self.torrc],
                              cwd=self.dir, stdin=subprocess.DEVNULL, stdout=out,
                              stderr=subprocess.STDOUT)
        return self

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def read_log(self, which="notice"):
        path = {"notice": self.notice_log, "info": self.info_log,
                "debug": self.debug_log}[which]
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except (OSError, TypeError):
            return ""

    def fingerprint(self):
        with open(os.path.join(self.data_dir, "fingerprint")) as f:
            return f.read().split()[1]

    def wait_log(self, pattern, timeout, which="notice"):
        """Wait until a line of the log matches pattern; return the match."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = regex.search(self.read_log(which))
            if m:
                return m
            if not self.alive():
                raise TorNetworkError("%s: tor exited (status %s) while waiting for %r"
                                      % (self.name, self.proc.returncode, pattern))
            if time.monotonic() > deadline:
                raise TorNetworkError("%s: no %r after %.0f s" % (self.name, pattern, timeout))
            time.sleep(0.1)

    def poll_bootstrap(self, on_progress=None):
        """Report new 'Bootstrapped N%' lines; returns the highest N so far."""
        text = self.read_log("notice")
        for line in text[self._log_offset:].splitlines():
            m = BOOTSTRAP_RE.search(line)
            if m and int(m.group(1)) > self._progress:
                self._progress = int(m.group(1))
                if on_progress:
                    on_progress(self, self._progress, m.group(2), m.group(3))
        self._log_offset = text.rfind("\n") + 1 if "\n" in text else 0
        return self._progress

    def wait_bootstrapped(self, timeout, on_progress=None):
        """Wait for Bootstrapped 100%; returns seconds since this tor started."""
        deadline = time.monotonic() + timeout
        while self.poll_bootstrap(on_progress) < 100:
            if not self.alive():
                raise TorNetworkError("%s: tor exited (status %s) during bootstrap"
                                      % (self.name, self.proc.returncode))
            if time.monotonic() > deadline:
                raise TorNetworkError("%s: bootstrap stuck at %d%% after %.0f s"
                                      % (self.name, self._progress, timeout))
            time.sleep(0.1)
        return time.monotonic() - self.started_at

    # Control port (clients only): cookie authentication, one command each.
    def control(self, *commands):
        cookie = open(os.path.join(self.data_dir, "control_auth_cookie"), "rb").read()
        with socket.create_connection((LOOPBACK, self.ports["control"]), timeout=10) as s:
            f = s.makefile("rwb")
            replies = []
            for cmd in ["AUTHENTICATE " + cookie.hex()] + list(commands):
                f.write(cmd.encode() + b"\r\n")
                f.flush()
                lines = []
                while True:
                    line = f.readline().decode(errors="replace").rstrip("\r\n")
                    if not line:
                        raise TorNetworkError("control port closed")
                    lines.append(line)
                    if line[3:4] == "+":       # data block up to a lone "."
                        while True:
                            data = f.readline().decode(errors="replace").rstrip("\r\n")
                            if data == ".":
                                break
                            lines.append(data)
                    elif line[3:4] == " ":
                        break
                if not lines[-1].startswith("250"):
                    raise TorNetworkError("control %r: %s" % (cmd.split()[0], lines[-1]))
                replies.append(lines)
            return replies[1:]


# --- the network --------------------------------------------------------

class TorNetwork:
    """Authority + relays; bridges and clients are added on demand."""

    def __init__(self, workdir, binary, exit_ports, relays=3, pt_log_level="info"):
        _check_no_space("work directory", workdir)
        _check_no_space("transport binary", binary)
        self.workdir = workdir
        self.binary = os.path.abspath(binary)
        self.n_relays = relays
        self.exit_ports = list(exit_ports)
        self.pt_log_level = pt_log_level
        self.nodes = []
        self.authority = None
        self.relays = []
        self.dir_authority_line = None
        self.started_at = None

    # Authority keys: a v3 identity/signing pair and certificate from
    # tor-gencert, and the relay identity from tor --list-fingerprint.
    def _make_authority_keys(self, node):
        keys = os.path.join(node.data_dir, "keys")
        os.makedirs(keys, mode=0o700, exist_ok=True)
        subprocess.run(["tor-gencert", "--create-identity-key", "-m", "12",
                        "-a", "%s:%d" % (LOOPBACK, node.ports["dir"]),
                        "-i", os.path.join(keys, "authority_identity_key"),
                        "-s", os.path.join(keys, "authority_signing_key"),
                        "-c", os.path.join(keys, "authority_certificate"),
                        "--passphrase-fd", "0"],
                       input=b"\n", check=True, cwd=node.dir,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        empty = os.path.join(node.dir, "empty-torrc")
        open(empty, "w").close()
        subprocess.run(["tor", "--defaults-torrc", empty, "-f", empty, "--quiet", "--list-fingerprint", "--DataDirectory", node.data_dir,
                        "--ORPort", "1", "--Nickname", node.name],
                       check=True, cwd=node.dir, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        with open(os.path.join(keys, "authority_certificate")) as f:
            v3ident = re.search(r"^fingerprint (\S+)", f.read(), re.M).group(1)
        return v3ident, node.fingerprint()

    def start(self):
        """Create the authority and relays and start them all at once."""
        become_subreaper()
        self.started_at = time.monotonic()
        auth = TorNode(self, "auth", "authority")
        auth.ports = {"or": free_port(), "dir": free_port()}
        v3ident, fp = self._make_authority_keys(auth)
        self.dir_authority_line = ("DirAuthority auth orport=%d no-v2 v3ident=%s %s:%d %s"
                                   % (auth.ports["or"], v3ident, LOOPBACK, auth.ports["dir"], fp))
        auth.write_torrc([
            "SocksPort 0",
            "ORPort %s:%d" % (LOOPBACK, auth.ports["or"]),
            "DirPort %s:%d" % (LOOPBACK, auth.ports["dir"]),
            "AuthoritativeDirectory 1",
            "V3AuthoritativeDirectory 1",
            "ContactInfo auth@test.invalid",
            "ExitPolicy reject *:*",
            "TestingAuthDirTimeToLearnReachability 0",
            # Fastest consensus cycle tor accepts: a first vote after 5 s,
            # then one every 10 s (VoteDelay + DistDelay < interval, and each
            # interval must divide 30 minutes).
            "TestingV3AuthInitialVotingInterval 5",
            "TestingV3AuthInitialVoteDelay 2",
            "TestingV3AuthInitialDistDelay 2",
            "V3AuthVotingInterval 10",
            "V3AuthVoteDelay 2",
            "V3AuthDistDelay 2",
        ])
        self.authority = auth
        self.nodes.append(auth)
        for i in range(self.n_relays):
            relay = TorNode(self, "relay%d" % (i + 1), "relay")
            relay.ports = {"or": free_port()}
            relay.write_torrc([
                "SocksPort 0",
                "ORPort %s:%d" % (LOOPBACK, relay.ports["or"]),
                "ContactInfo relay@test.invalid",
                "ExitRelay 1",
                "ExitPolicyRejectPrivate 0",
                "ExitPolicyRejectLocalInterfaces 0",
                # A relay refuses streams whose previous hop is not in its
                # own consensus; in a network seconds old an exit may not
                # know the middle relay yet ("open a stream from unknown
                # relay"), and a fetch failed that way.
                "RefuseUnknownExits 0",
            ] + self._exit_policy())
            self.relays.append(relay)
            self.nodes.append(relay)
        for node in self.nodes:
            node.start()
        return self

    def _exit_policy(self):
        # Exits to the loopback test server only. The clients choose exits
        # from microdescriptor policy summaries, which only list ports that
        # are open to (nearly) every address (tor #11264), so an exit that
        # accepted just 127.0.0.0/8 would never be picked: we accept the
        # test ports on any address. Nothing but our own loopback clients
        # can reach these relays, and only while the network runs.
        lines = ["ExitPolicy accept 127.0.0.0/8:%d" % p for p in self.exit_ports]
        lines += ["ExitPolicy accept *:%d" % p for p in self.exit_ports]
        return lines + ["ExitPolicy reject *:*"]

    def consensus_relays(self):
        """(relays, exits) in the authority's latest consensus."""
        try:
            with open(os.path.join(self.authority.data_dir, "cached-consensus")) as f:
                text = f.read()
        except OSError:
            return 0, 0
        relays = len(re.findall(r"^r ", text, re.M))
        exits = len([s for s in re.findall(r"^s (.*)$", text, re.M)
                     if "Exit" in s.split() and "Running" in s.split()])
        return relays, exits

    def wait_for_consensus(self, timeout=90, on_progress=None):
        """Wait until a consensus lists all but one of the authority and
        relays, Running with the Exit flag: then at least two real exits
        are usable (the authority's policy rejects everything), enough for
        bridge -> middle -> exit. The next consensus, 10 s later, usually
        lists everyone.

        Returns seconds since start()."""
        want = self.n_relays
        deadline = time.monotonic() + timeout
        last = None
        while True:
            for node in self.nodes:
                if not node.alive():
                    raise TorNetworkError("%s: tor exited (status %s)"
                                          % (node.name, node.proc.returncode))
            relays, exits = self.consensus_relays()
            if (relays, exits) != last and on_progress:
                on_progress(relays, exits, want)
            last = (relays, exits)
            if relays >= want and exits >= want:
                return time.monotonic() - self.started_at
            if time.monotonic() > deadline:
                raise TorNetworkError("consensus has %d relays (%d exits) after %.0f s, want %d"
                                      % (relays, exits, timeout, want))
            time.sleep(0.2)

    def add_bridge(self, name, transport_options=(), debug_log=True):
        """A bridge relay running our server transport behind ExtORPort auto.

        transport_options: k=v strings for ServerTransportOptions websocket.
        The websocket listener is pinned to 127.0.0.1:<port> with
        ServerTransportListenAddr (tor would otherwise hand 0.0.0.0:0)."""
        bridge = TorNode(self, name, "bridge")
        bridge.ports = {"or": free_port(), "websocket": free_port()}
        lines = [
            "SocksPort 0",
            "ORPort %s:%d" % (LOOPBACK, bridge.ports["or"]),
            "BridgeRelay 1",
            "PublishServerDescriptor 0",
            "ExitPolicy reject *:*",
            "ExtORPort auto",
            "ServerTransportPlugin websocket exec %s --server --managed --log-level=%s"
            % (self.binary, self.pt_log_level),
            "ServerTransportListenAddr websocket %s:%d" % (LOOPBACK, bridge.ports["websocket"]),
        ]
        for opt in transport_options:
            _check_no_space("transport option", opt)
        if transport_options:
            lines.append("ServerTransportOptions websocket " + " ".join(transport_options))
        if debug_log:
            # The ExtORPort proof is only logged at debug level, in the
            # "general" (client seen with transport X) and "net" (USERADDR)
            # domains; the others stay at info to keep the file small.
            bridge.debug_log = os.path.join(bridge.dir, "debug.log")
            lines.append("Log [general,net]debug [*]info file " + bridge.debug_log)
        bridge.write_torrc(lines)
        self.nodes.append(bridge)
        return bridge.start()

    def wait_bridge_ready(self, bridge, timeout=30):
        """Wait for the SMETHOD to be registered; returns the address."""
        m = bridge.wait_log(r"Registered server transport 'websocket' at '([^']+)'", timeout)
        return m.group(1)

    def add_client(self, name, bridge, bridge_args, client_pt_args=(), pt_debug_log=False):
        """A client using only bridge, through our client transport.

        bridge_args: k=v strings of the Bridge line (url=..., mode=...).
        pt_debug_log: run the transport at --log-level=debug and keep tor's
        "pt" log domain at debug level in debug.log (per-connection lines
        such as "WebSocket open (base64 frames)")."""
        client = TorNode(self, name, "client")
        client.ports = {"socks": free_port(), "control": free_port()}
        for a in list(bridge_args) + list(client_pt_args):
            _check_no_space("transport argument", a)
        exec_line = "%s --client --managed --log-level=%s" % (
            self.binary, "debug" if pt_debug_log else self.pt_log_level)
        extra = []
        if pt_debug_log:
            client.debug_log = os.path.join(client.dir, "debug.log")
            extra.append("Log [pt]debug [*]info file " + client.debug_log)
        if client_pt_args:
            exec_line += " " + " ".join(client_pt_args)
        client.bridge = bridge
        client.bridge_line = "websocket %s:%d %s %s" % (
            LOOPBACK, bridge.ports["websocket"], bridge.fingerprint(), " ".join(bridge_args))
        client.write_torrc([
            "SocksPort %s:%d" % (LOOPBACK, client.ports["socks"]),
            "ControlPort %s:%d" % (LOOPBACK, client.ports["control"]),
            "CookieAuthentication 1",
            "UseBridges 1",
            # Microdescriptors (the default) are required: with
            # UseMicrodescriptors 0 and bridges, tor 0.4.5+ counts no node as
            # usable for the first hop (router_can_choose_node() rejects
            # bridge-purpose descriptors for direct connections) and never
            # builds a circuit. Hence the exit policy trick above.
            "ClientTransportPlugin websocket exec " + exec_line,
            "Bridge " + client.bridge_line,
        ] + extra)
        self.nodes.append(client)
        return client.start()

    def stop(self):
        """Stop every node, clients first, then every other process."""
        for node in reversed(self.nodes):
            node.stop()
        stop_all()

    def collect_logs(self, dest):
        """Copy torrcs and logs (not keys or state) to dest, for post-mortems."""
        for node in self.nodes:
            out = os.path.join(dest, node.name)
            os.makedirs(out, exist_ok=True)
            for f in ("torrc", "notice.log", "info.log", "debug.log", "stdout.log"):
                src = os.path.join(node.dir, f)
                if os.path.exists(src):
                    shutil.copy(src, out)


# --- traffic -------------------------------------------------------------

class BlobServer:
    """An HTTP server on 127.0.0.1 serving one random blob at /blob."""

    def __init__(self, size):
        self.blob = os.urandom(size)
        self.sha256 = hashlib.sha256(self.blob).hexdigest()
        blob = self.blob

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path != "/blob":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(blob)))
                self.end_headers()
                try:
                    self.wfile.write(blob)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise TorNetworkError("SOCKS: connection closed")
        data += chunk
    return data


def socks_http_get(socks_port, host, port, path, timeout=60):
    """GET http://host:port/path through a SOCKS5 proxy (tor's SocksPort).

    Returns (body, seconds)."""
    t0 = time.monotonic()
    with socket.create_connection((LOOPBACK, socks_port), timeout=timeout) as s:
        s.sendall(b"\x05\x01\x00")
        if _recv_exact(s, 2) != b"\x05\x00":
            raise TorNetworkError("SOCKS: no-auth method refused")
        name = host.encode()
        s.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + struct.pack(">H", port))
        reply = _recv_exact(s, 4)
        if reply[1] != 0:
            raise TorNetworkError("SOCKS: CONNECT failed, reply %d" % reply[1])
        skip = {1: 4, 4: 16}.get(reply[3])
        _recv_exact(s, skip + 2 if skip else _recv_exact(s, 1)[0] + 2)
        s.sendall(("GET %s HTTP/1.0\r\nHost: %s:%d\r\n\r\n" % (path, host, port)).encode())
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1.0 200"):
        raise TorNetworkError("HTTP: bad response %r" % head[:80])
    return body, time.monotonic() - t0


class StreamWatcher:
    """Records the client's STREAM control events from a background thread,
    so that the circuit which carried a given stream can be found after the
    stream has closed."""

    def __init__(self, client):
        self.client = client
        cookie = open(os.path.join(client.data_dir, "control_auth_cookie"), "rb").read()
        self.sock = socket.create_connection((LOOPBACK, client.ports["control"]), timeout=10)
        self.file = self.sock.makefile("rwb")
        for cmd in ("AUTHENTICATE " + cookie.hex(), "SETEVENTS STREAM"):
            self.file.write(cmd.encode() + b"\r\n")
            self.file.flush()
            line = self.file.readline().decode(errors="replace").strip()
            if not line.startswith("250"):
                raise TorNetworkError("control %r: %s" % (cmd.split()[0], line))
        self.sock.settimeout(None)
        self.events = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for raw in self.file:
                self.events.append(raw.decode(errors="replace").strip())
        except (OSError, ValueError):
            pass

    def circuit_for(self, target):
        """The circuit id whose stream to target (HOST:PORT) succeeded."""
        for line in self.events:
            f = line.split()
            if len(f) >= 6 and f[:2] == ["650", "STREAM"] and f[3] == "SUCCEEDED" and f[5] == target:
                return f[4]
        return None

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def circuit_path(client, circ_id):
    """Fingerprints of the hops of a client circuit, from GETINFO circuit-status."""
    (lines,) = client.control("GETINFO circuit-status")
    for line in lines:
        # One circuit comes as "250-circuit-status=<line>", several as a
        # "250+circuit-status=" data block.
        for prefix in ("250-circuit-status=", "250+circuit-status="):
            if line.startswith(prefix):
                line = line[len(prefix):]
        f = line.split()
        if len(f) >= 3 and f[0] == circ_id and f[1] == "BUILT":
            return [hop.split("~")[0].split("=")[0].lstrip("$") for hop in f[2].split(",")]
    return None
