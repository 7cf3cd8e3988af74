#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Fault case: a bridge's tor is sent SIGHUP while tunnels to it are open.

A real tor (Debian's) runs as a bridge (ORPort, ExtORPort auto, no
directory authority reachable: it never leaves 127.0.0.1) with our
server transport; our client, run by the test, opens tunnels to it.
Tunnels opened before the SIGHUPs complete tor's own link handshake
afterwards (TLS with tor's ORPort through the ExtORPort, then a VERSIONS
cell answered with tor's VERSIONS): tor keeps the server transport (same
PID, same port), the Extended ORPort and its cookie across reloads, and
new tunnels reach tor too. Last, a reload that moves ExtORPort: tor keeps
the transport on the old port, new tunnels fail, and our warning in
tor's log says to restart tor.
"""

import os
import shutil
import signal
import ssl
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faults  # noqa: E402
from faults import Case, ManagedPT, Tunnel, free_port, tn, wait_until  # noqa: E402


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def link_handshake(tunnel):
    """tor's link handshake over the tunnel: TLS with the bridge's ORPort,
    then VERSIONS (link protocol 4 and 5); returns the versions tor
    offers. Raises on any failure."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE          # tor's link certificates are self-signed
    tunnel.sock.settimeout(30)
    tls = ctx.wrap_socket(tunnel.sock, do_handshake_on_connect=True)
    tls.sendall(struct.pack(">HBH", 0, 7, 4) + struct.pack(">HH", 4, 5))
    head = b""
    while len(head) < 5:
        chunk = tls.recv(5 - len(head))
        if not chunk:
            raise faults.CaseError("tor closed the link before VERSIONS")
        head += chunk
    circ, cmd, length = struct.unpack(">HBH", head)
    if cmd != 7:
        raise faults.CaseError("tor's first cell is command %d, not VERSIONS" % cmd)
    body = b""
    while len(body) < length:
        chunk = tls.recv(length - len(body))
        if not chunk:
            raise faults.CaseError("tor closed the link inside VERSIONS")
        body += chunk
    tunnel.sock = tls
    return [v for (v,) in struct.iter_unpack(">H", body)]


def main():
    with Case("tor-hup-bridge") as case:
        if not shutil.which("tor"):
            raise faults.CaseError("tor is not installed (scripts/install-deps.sh installs it)")
        data = case.path("tor-data")
        os.makedirs(data, mode=0o700)
        or_port, ws_port = free_port(), free_port()
        torrc = case.path("torrc")
        with open(torrc, "w") as f:
            f.write("\n".join([
                "DataDirectory " + data,
                "RunAsDaemon 0",
                "SocksPort 0",
                "Log notice file " + case.path("tor-notice.log"),
                "Log [pt]info [*]notice file " + case.path("tor-pt.log"),
                "SafeLogging 0",
                "Address 127.0.0.1",
                "AddressDisableIPv6 1",
                "AssumeReachable 1",
                "ORPort 127.0.0.1:%d" % or_port,
                "BridgeRelay 1",
                "PublishServerDescriptor 0",
                "ExitPolicy reject *:*",
                "ExtORPort auto",
                "ServerTransportPlugin websocket exec %s --server --managed --log-level=info" % faults.binary(),
                "ServerTransportListenAddr websocket 127.0.0.1:%d" % ws_port,
                faults.FAKE_AUTHORITY,
            ]) + "\n")
        empty = case.path("empty-torrc")
        open(empty, "w").close()
        with open(case.path("tor-stdout.log"), "wb") as out:
            tor = tn.spawn(["tor", "--defaults-torrc", empty, "-f", torrc], cwd=case.workdir,
                           stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        wait_until("the server transport registered",
                   lambda: "Registered server transport 'websocket'" in read(case.path("tor-notice.log"))
                   or tor.poll() is not None, 90)
        case.check(tor.poll() is None, "the bridge's tor runs and registered our transport",
                   read(case.path("tor-notice.log"))[-2000:])
        pt = wait_until("the server transport", lambda: faults.transport_of(tor), 30)
        case.check(pt[1] == ws_port, "the transport listens where tor asked (PID %d)" % pt[0])
        cookie = os.path.join(data, "extended_orport_auth_cookie")
        cookie_before = read(cookie) if os.path.exists(cookie) else None

        client = ManagedPT.client(case, "client")
        url = "ws://127.0.0.1:%d/" % ws_port
        early = [Tunnel(client.port, url) for _ in range(2)]
        try:
            versions = link_handshake(Tunnel(client.port, url))
            case.check(4 in versions or 5 in versions,
                       "before any SIGHUP, a tunnel reaches tor (VERSIONS %s)" % versions)
        except (OSError, ssl.SSLError, faults.CaseError) as e:
            case.check(False, "before any SIGHUP, a tunnel reaches tor", str(e))

        for i in range(2):
            reloads = read(case.path("tor-notice.log")).count("Received reload signal")
            tor.send_signal(signal.SIGHUP)
            wait_until("tor's reload %d" % (i + 1),
                       lambda: read(case.path("tor-notice.log")).count("Received reload signal") > reloads, 60)
            case.check(tor.poll() is None and faults.transport_of(tor) == pt,
                       "SIGHUP %d: tor keeps the same server transport on the same port" % (i + 1),
                       "now %s" % (faults.transport_of(tor),))
            t = early[i]
            try:
                versions = link_handshake(t)
                case.check(bool(versions), "SIGHUP %d: a tunnel opened before it completes tor's link "
                           "handshake (VERSIONS %s)" % (i + 1, versions))
            except (OSError, ssl.SSLError, faults.CaseError) as e:
                case.check(False, "SIGHUP %d: a tunnel opened before it still reaches tor" % (i + 1), str(e))
        try:
            versions = link_handshake(Tunnel(client.port, url))
            case.check(bool(versions), "after the reloads, a new tunnel reaches tor")
        except (OSError, ssl.SSLError, faults.CaseError) as e:
            case.check(False, "after the reloads, a new tunnel reaches tor", str(e))
        case.check(cookie_before is not None and read(cookie) == cookie_before,
                   "the Extended ORPort cookie is unchanged by the reloads")
        log = read(case.path("tor-pt.log"))
        case.check("for restart" not in log and log.count("Registered server transport") <= 1,
                   "tor never restarted the server transport", log[-2000:])
        warnings = [l for l in log.splitlines() if "[warn]" in l and "Managed proxy" in l]
        case.check(not warnings, "no warning from our transport in tor's log", "\n".join(warnings))

        # A reload that moves the ExtORPort: tor 0.4.9 opens the new
        # listener and keeps the transport, which only knows the old port
        # (TOR_PT_EXTENDED_SERVER_PORT is given once): new tunnels fail
        # and our warning in tor's log says to restart tor.
        with open(torrc) as f:
            text = f.read()
        with open(torrc, "w") as f:
            f.write(text.replace("ExtORPort auto", "ExtORPort 127.0.0.1:%d" % free_port()))
        reloads = read(case.path("tor-notice.log")).count("Received reload signal")
        tor.send_signal(signal.SIGHUP)
        wait_until("tor's reload with a moved ExtORPort",
                   lambda: read(case.path("tor-notice.log")).count("Received reload signal") > reloads, 60)
        case.check(faults.transport_of(tor) == pt, "ExtORPort moved by a reload: tor keeps the transport")
        try:
            Tunnel(client.port, url).close()
            case.check(False, "ExtORPort moved: a new tunnel fails")
        except faults.SocksError as e:
            case.check(e.reply != 0, "ExtORPort moved: a new tunnel fails (SOCKS reply %d)" % e.reply)
        line = wait_until("our warning in tor's log", lambda: [
            l for l in read(case.path("tor-pt.log")).splitlines()
            if "[warn]" in l and "restart tor" in l], 30)[0]
        case.check(True, "ExtORPort moved: tor's log says to restart tor")
        case.note(line)
    case.exit()


if __name__ == "__main__":
    main()
