"""A client that stops reading stdout: the window it grants stays shut.

paramiko re-opens a channel's window only as the program reads (recv), so
with a small window and no reads, the server's writer soon has nothing left
to send into. Usage: stalled_reader.py PORT KEY COMMAND...

Prints `stalled` once the window is used up, then, when the server ends the
session, one JSON line with the exit status and the stderr text.
"""

import json
import sys
import time

import paramiko

WINDOW = 64 * 1024
LIMIT = 30.0


def main():
    port, key_path, command = int(sys.argv[1]), sys.argv[2], " ".join(sys.argv[3:])
    key = paramiko.Ed25519Key.from_private_key_file(key_path)
    transport = paramiko.Transport(("127.0.0.1", port))
    transport.connect(username="tester", pkey=key)
    chan = transport.open_session(window_size=WINDOW, max_packet_size=32 * 1024)
    chan.exec_command(command)
    deadline = time.monotonic() + LIMIT
    # The server keeps 1 KiB of the window for stderr; 48 KiB unread proves
    # that the window was used up to well past a packet.
    while len(chan.in_buffer) < 48 * 1024:
        if time.monotonic() > deadline:
            sys.exit("the window never filled")
        time.sleep(0.01)
    print("stalled", flush=True)
    if not chan.status_event.wait(LIMIT):
        sys.exit("no exit status")
    stderr = b""
    while chan.recv_stderr_ready():
        stderr += chan.recv_stderr(4096)
    print(json.dumps({"status": chan.recv_exit_status(), "stderr": stderr.decode()}), flush=True)
    transport.close()


if __name__ == "__main__":
    main()
