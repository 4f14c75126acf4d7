"""flasfka-passwd: make the hashes USERS and TOKENS hold.

``flasfka-passwd`` reads a password from stdin (the first line, or the whole input when it is
piped without a newline) and prints its scrypt hash for ``USERS = {"name": "<hash>"}``.
``flasfka-passwd --token`` makes a new bearer token and prints it and its hash for
``TOKENS``. The password is never an argument: arguments show in ``ps`` and shell history.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from flasfka.security.hashing import hash_password, hash_token, new_token


def main(argv: list[str] | None = None) -> int:
    """Print a password hash (password on stdin) or a new token and its hash."""
    parser = argparse.ArgumentParser(
        prog="flasfka-passwd",
        description="Hash a password (read from stdin) for USERS, or make a token for TOKENS.",
    )
    parser.add_argument(
        "--token", action="store_true", help="generate a bearer token and print it and its hash"
    )
    args = parser.parse_args(argv)
    if args.token:
        token = new_token()
        print(f"token: {token}")
        print(f"hash:  {hash_token(token)}")
        return 0
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("flasfka-passwd: empty password", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


if __name__ == "__main__":
    sys.exit(main())
