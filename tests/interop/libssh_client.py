"""Runs one command with libssh (PyPI ansible-pylibssh bundles libssh 0.12).

Usage: libssh_client.py PORT KEY WORDS...

Only for commands that read no stdin (whoami): stdout and stderr are copied
through byte-exact and the remote exit status becomes ours; 255 when the
client cannot connect or log in, as OpenSSH does.
"""

import os
import sys

from pylibsshext.errors import LibsshSessionException
from pylibsshext.session import Session


def main():
    port, key_path, words = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    # libssh reads ~/.ssh/config and known_hosts; point it at an empty home.
    os.environ["HOME"] = os.path.dirname(os.path.abspath(key_path))
    with open(key_path, "rb") as f:
        key = f.read()
    session = Session()
    try:
        session.connect(
            host="127.0.0.1",
            port=port,
            user="tester",
            private_key=key,
            host_key_checking=False,
            look_for_keys=False,
            timeout=20,
        )
    except LibsshSessionException as e:
        print(f"libssh_client: {e}", file=sys.stderr)
        return 255
    done = session.new_channel().exec_command(" ".join(words))
    sys.stdout.buffer.write(done.stdout)
    sys.stderr.buffer.write(done.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
