"""`texgen batch SRC --out DST`: texture a folder of meshes, resumably; `texgen batch --status DST`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

from .options import add_load_options, load_options_for
from .texture import add_texture_options, settings_from_args

EPILOG = """\
Prompts, per asset: the manifest row's prompt, else a sidecar MESH.prompt.txt next to the mesh,
else --prompt, a template filled from {stem}, {name}, {parent} and {relpath}, e.g.
  texgen batch props/ --out textured/ --prompt "{stem}, weathered, PBR"
Manifest (.csv, .jsonl or .toml with [[asset]] tables): one row per asset with 'path' (relative to
SRC) and optionally prompt, negative_prompt, seed and any other texture option (view_size, steps...).
Every texture option above is a batch-wide default. Re-running the same command skips finished
assets whose mesh, prompt and options are unchanged and resumes after a crash; the ledger is
DST/texgen-batch.sqlite and the contact sheet DST/index.html. Exit status: 0 when every asset is
done, 1 when some failed (see --status), 2 on a usage error.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "batch", help="texture a folder of meshes (resumable; local, servers or Ray)", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Texture every mesh under SRC into DST, mirroring SRC's folders, with the same outputs as "
                    "`texgen texture`.")
    parser.add_argument("src", type=Path, nargs="?", help="folder of meshes")
    parser.add_argument("--out", type=Path, help="output folder DST (made if missing)")
    parser.add_argument("--status", type=Path, metavar="DST", help="print the ledger summary of DST and exit")
    source = parser.add_argument_group("assets")
    source.add_argument("--glob", default=None, metavar="PATTERN",
                        help="which files under SRC, e.g. '**/*.glb' (default: every mesh file, recursively)")
    source.add_argument("--manifest", type=Path, metavar="FILE", help="CSV, JSON Lines or TOML list of assets")
    source.add_argument("--retry-failed", action="store_true", help="retry assets that failed with unchanged inputs")
    run = parser.add_argument_group("where to run")
    run.add_argument("--executor", choices=("local", "server", "ray"), default="local",
                     help="local: in this process (default); server: on `texgen serve` servers; ray: on a Ray cluster")
    run.add_argument("--server", action="append", metavar="ADDRESS",
                     help="a texgen server, e.g. tcp://gpu-box:5555; repeat to spread assets over several")
    run.add_argument("--server-key", type=Path, metavar="FILE", help="the servers' public key (server.key)")
    run.add_argument("--client-key", type=Path, metavar="FILE", help="this client's NAME.key_secret")
    run.add_argument("--server-timeout", type=float, default=10.0, metavar="S",
                     help="seconds to wait for each server reply (default 10)")
    run.add_argument("--ray-address", metavar="ADDRESS",
                     help="auto or ray://HOST:PORT to join a Ray cluster (default: start a local Ray)")
    run.add_argument("--ray-workers", type=int, metavar="N",
                     help="Ray actors, each keeping a model warm (default: one per GPU, 2 without GPUs)")
    add_texture_options(parser)
    add_load_options(parser)
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..errors import ConfigError

    console = Console()
    if args.status is not None:
        return show_status(args.status, console)
    if args.src is None or args.out is None:
        raise ConfigError("texgen batch needs SRC and --out DST (or --status DST)")
    from ..batch.executors import make_executor
    from ..batch.runner import run_batch
    from ..batch.sources import DEFAULT_GLOB, BatchSource

    source = BatchSource(args.src, args.out, settings_from_args(args), args.glob or DEFAULT_GLOB, args.manifest)
    load_options = load_options_for(args, "each server" if args.executor == "server" else "")
    summary = run_batch(source, lambda: make_executor(
        args.executor, servers=args.server, server_key=args.server_key, client_key=args.client_key,
        server_timeout=args.server_timeout, ray_address=args.ray_address, ray_workers=args.ray_workers,
        load_options=load_options),
        retry_failed=args.retry_failed, console=console)
    return 1 if summary.failed or summary.failed_before else 0


def show_status(dst: Path, console: "Console") -> int:
    from ..batch.ledger import LEDGER_NAME, Ledger
    from ..batch.report import print_status

    with Ledger(dst / LEDGER_NAME, readonly=True) as ledger:
        print_status(console, ledger)
        counts = ledger.counts()
    return 0 if counts["failed"] == 0 else 1
