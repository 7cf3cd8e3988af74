#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Moves data through a running client transport exactly as tor would:
SOCKS5 with the bridge line's arguments in the username, then a bulk echo
whose sha256 is checked. Prints the figures."""
import hashlib
import os
import socket
import sys
import threading
import time


def socks_connect(port, args, target=("127.0.0.1", 9)):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"\x05\x02\x00\x02")
    assert s.recv(2) == b"\x05\x02", "proxy did not choose username/password"
    a = args.encode()
    uname, passwd = a[:255], a[255:] or b"\x00"
    s.sendall(bytes([1, len(uname)]) + uname + bytes([len(passwd)]) + passwd)
    assert s.recv(2) == b"\x01\x00", "bridge arguments refused"
    ip = socket.inet_aton(target[0])
    s.sendall(b"\x05\x01\x00\x01" + ip + target[1].to_bytes(2, "big"))
    reply = s.recv(10)
    if reply[1] != 0:
        raise SystemExit(f"SOCKS request failed with code {reply[1]}")
    return s


def echo_run(port, args, size):
    s = socks_connect(port, args)
    payload = os.urandom(1 << 20)
    sent = hashlib.sha256()
    received = hashlib.sha256()
    got = 0

    def reader():
        nonlocal got
        while got < size:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            received.update(chunk)
            got += len(chunk)

    t = threading.Thread(target=reader)
    start = time.monotonic()
    t.start()
    left = size
    while left > 0:
        piece = payload[: min(left, len(payload))]
        sent.update(piece)
        s.sendall(piece)
        left -= len(piece)
    t.join(timeout=120)
    elapsed = time.monotonic() - start
    s.close()
    ok = got == size and sent.digest() == received.digest()
    return ok, elapsed


def main():
    port = int(sys.argv[1])
    url = sys.argv[2]
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 256 << 20
    all_ok = True
    for mode in ("binary", "base64"):
        ok, elapsed = echo_run(port, f"url={url};mode={mode}", size)
        all_ok &= ok
        mib = size / (1 << 20)
        print(f"  {mode:6}: {mib:.0f} MiB up and {mib:.0f} MiB back in {elapsed:.2f} s "
              f"({2 * mib / elapsed:.0f} MiB/s total), sha256 {'equal' if ok else 'DIFFERENT'}")
    sys.exit(0 if all_ok else 1)


if __name__ == "__main__":
    main()
