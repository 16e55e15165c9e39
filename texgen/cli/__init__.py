"""The ``texgen`` command line. Each sub-command lives in its own module under texgen.cli.

A command module defines ``register(subparsers)``, which adds its parser and sets
``func`` to a handler taking the parsed namespace and returning an exit code. Command
modules import heavy libraries inside their handlers, so ``texgen --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..errors import Cancelled, TexgenError

COMMAND_MODULES = (
    "texture",
    "inpaint_seams",
    "eval",
    "inspect_mesh",
    "models",
    "serve",
    "keys",
    "batch",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="texgen", description="Texture 3D meshes from text prompts.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("OpenGL").setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except Cancelled:
        print("texgen: cancelled; nothing half-done was written", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("texgen: interrupted; nothing half-done was written", file=sys.stderr)
        return 130
    except TexgenError as exc:
        print(f"texgen: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
