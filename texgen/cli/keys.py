"""`texgen keys generate DIR [--name NAME]`: make a CURVE key pair for the server or a client."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("keys", help="manage CURVE keys for `texgen serve`")
    actions = parser.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    generate = actions.add_parser("generate", help="write NAME.key (public) and NAME.key_secret into DIR")
    generate.add_argument("directory", type=Path, metavar="DIR")
    generate.add_argument("--name", default="server",
                          help="'server' for the server's pair, anything else for a client (default server)")
    generate.set_defaults(func=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    from ..server.auth import SERVER_KEY_NAME, generate_keys

    public, secret = generate_keys(args.directory, args.name)
    print(f"public key: {public}\nsecret key: {secret} (keep it private)")
    if args.name == SERVER_KEY_NAME:
        print(f"start the server with `texgen serve --keys {args.directory} --allow CLIENT_KEYS_DIR`; "
              f"give clients {public}")
    else:
        print(f"copy {public} into the server's --allow folder and restart it; the client uses {secret} "
              "and the server's server.key")
    return 0
