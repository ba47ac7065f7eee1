"""Log in to sshpipe with paramiko, run one command, report as JSON.

Used by tests/keys.rs: paramiko is a client we did not write (GUIDE §4).

    python3 paramiko_login.py --port N --key FILE [--key FILE ...]
        [--command whoami] [--no-mlkem] [--force-ssh-rsa]

Prints one JSON object on stdout:
    {"ok": true, "kex": "mlkem768x25519-sha256", "exit": 0,
     "stdout": "...", "stderr": "...", "seconds": 0.1}
or {"ok": false, "error": "...", "kex": ..., "seconds": ...}.
The script itself exits 0 either way; the Rust test decides.
"""

import argparse
import json
import logging
import time

import paramiko


class KexRecorder(logging.Handler):
    """paramiko logs the agreed key exchange as "Kex: NAME" (debug)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.kex = None

    def emit(self, record):
        msg = record.getMessage()
        if msg.startswith("Kex: ") and self.kex is None:
            self.kex = msg[len("Kex: "):].strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key", action="append", required=True)
    ap.add_argument("--command", default="whoami")
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--no-mlkem", action="store_true",
                    help="offer no ML-KEM key exchange (an older client)")
    ap.add_argument("--force-ssh-rsa", action="store_true",
                    help="sign RSA keys with SHA-1 ssh-rsa whatever the server says")
    args = ap.parse_args()

    recorder = KexRecorder()
    log = logging.getLogger("paramiko")
    log.setLevel(logging.DEBUG)
    log.addHandler(recorder)

    if args.force_ssh_rsa:
        # paramiko 5 no longer signs with SHA-1 at all; put it back.
        from cryptography.hazmat.primitives import hashes
        paramiko.RSAKey.HASHES = {**paramiko.RSAKey.HASHES, "ssh-rsa": hashes.SHA1}
        paramiko.auth_handler.AuthHandler._finalize_pubkey_algorithm = (
            lambda self, key_type: "ssh-rsa")

    disabled = {"kex": ["mlkem768x25519-sha256"]} if args.no_mlkem else None
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    start = time.monotonic()
    result = {}
    try:
        client.connect(
            "127.0.0.1", port=args.port, username="tester",
            key_filename=args.key, look_for_keys=False, allow_agent=False,
            timeout=args.timeout, auth_timeout=args.timeout,
            banner_timeout=args.timeout, disabled_algorithms=disabled)
        _, out, err = client.exec_command(args.command, timeout=args.timeout)
        result = {
            "ok": True,
            "stdout": out.read().decode(),
            "stderr": err.read().decode(),
            "exit": out.channel.recv_exit_status(),
        }
    except Exception as e:  # report any failure to the test
        result = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    finally:
        client.close()
    result["kex"] = recorder.kex
    result["seconds"] = round(time.monotonic() - start, 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
