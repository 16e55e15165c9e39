"""`texgen eval roundtrip MESH --json`: the oracle round trip, texgen's quality number."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="measure quality without a model")
    commands = parser.add_subparsers(dest="eval_command", required=True, metavar="EVAL")
    roundtrip = commands.add_parser(
        "roundtrip", help="render a mesh's own texture from views and bake it back",
        description="Render MESH's own texture from the views, bake the renders into an empty texture of the "
                    "same UV layout and compare. Prints one JSON object.")
    roundtrip.add_argument("mesh", type=Path)
    roundtrip.add_argument("--views", type=int, default=8)
    roundtrip.add_argument("--view-size", type=int, default=1024)
    roundtrip.add_argument("--texture-size", type=int, default=1024)
    roundtrip.add_argument("--perturb", action="store_true",
                           help="per-view colour gain/offset and a 1-3 px shift in the oracle's renders")
    roundtrip.add_argument("--seed", type=int, default=0)
    roundtrip.add_argument("--out", type=Path, help="write baked.png (before padding) and reference.png here")
    roundtrip.add_argument("--json", action="store_true", help="print the metrics as one JSON object (default)")
    roundtrip.set_defaults(func=run_roundtrip)


def run_roundtrip(args: argparse.Namespace) -> int:
    import numpy as np

    from ..eval import roundtrip
    from ..export import atomic_write, png_bytes
    from ..mesh import load_mesh

    mesh = load_mesh(args.mesh)
    metrics, images = roundtrip(mesh, views=args.views, view_size=args.view_size, texture_size=args.texture_size,
                                perturb=args.perturb, seed=args.seed)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for name in ("baked", "reference"):
            atomic_write(args.out / f"{name}.png", png_bytes(np.clip(images[name] * 255 + 0.5, 0, 255).astype(np.uint8)))
    print(json.dumps(metrics, indent=None if args.json else 2))
    return 0
