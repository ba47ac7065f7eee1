#!/usr/bin/env python3
"""A minimal `ssh host COMMAND` made with paramiko, for tests/interop.rs.

    paramiko_client.py --port PORT --key KEY --host-key SHA256:... -- CMD...

Connects to 127.0.0.1 (or --host), checks that the server's host key has the
given SHA256 fingerprint, logs in with the private key file (OpenSSH format:
ed25519, ECDSA or RSA), runs CMD (its words joined by spaces, as ssh does) on
an exec channel without a PTY, and copies bytes unchanged: stdin to the
channel (EOF when stdin ends), channel data to stdout, extended data to
stderr. Exits with the remote exit status, or 255 (as ssh does) when it
could not connect, log in, or got no exit status; the reason is then one
line on stderr starting `paramiko_client:`.
"""

import argparse
import base64
import hashlib
import logging
import os
import socket
import sys
import threading

import paramiko

CHUNK = 32 * 1024


def fail(msg):
    sys.stderr.write(f"paramiko_client: {msg}\n")
    sys.stderr.flush()
    sys.exit(255)


def fingerprint(key):
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def pump_stdin(chan):
    """stdin -> channel, then EOF. Stops quietly if the channel is gone."""
    try:
        while True:
            data = os.read(0, CHUNK)
            if not data:
                break
            chan.sendall(data)
        chan.shutdown_write()
    except (OSError, EOFError, paramiko.SSHException):
        pass


def pump_out(recv, fd):
    """channel (data or extended data) -> fd, until the channel's EOF."""
    while True:
        data = recv(CHUNK)
        if not data:
            return
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", default="tester")
    p.add_argument("--key", required=True)
    p.add_argument("--host-key", required=True, help="SHA256:... fingerprint")
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args()
    # paramiko logs its transport thread's exceptions (tracebacks) through
    # logging; the one line from fail() says the same.
    logging.getLogger("paramiko").addHandler(logging.NullHandler())
    words = args.command[1:] if args.command[:1] == ["--"] else args.command

    try:
        pkey = paramiko.PKey.from_path(args.key)
    except Exception as e:  # noqa: BLE001 - any load error ends the run
        fail(f"cannot load key {args.key}: {e}")
    try:
        sock = socket.create_connection((args.host, args.port), args.timeout)
        transport = paramiko.Transport(sock)
        transport.start_client(timeout=args.timeout)
    except Exception as e:  # noqa: BLE001
        fail(f"cannot connect: {e}")
    seen = fingerprint(transport.get_remote_server_key())
    if seen != args.host_key:
        fail(f"host key mismatch: server has {seen}, expected {args.host_key}")
    try:
        transport.auth_publickey(args.user, pkey)
    except Exception as e:  # noqa: BLE001
        fail(f"authentication failed: {type(e).__name__}: {e}")

    chan = transport.open_session(timeout=args.timeout)
    chan.exec_command(" ".join(words))
    threading.Thread(target=pump_stdin, args=(chan,), daemon=True).start()
    err = threading.Thread(target=pump_out, args=(chan.recv_stderr, 2))
    err.start()
    pump_out(chan.recv, 1)
    err.join()
    # recv_exit_status waits for the exit-status request or the close.
    status = chan.recv_exit_status()
    transport.close()
    if status < 0:
        fail("the server closed the channel without an exit status")
    sys.exit(status)


if __name__ == "__main__":
    main()
