"""`texgen inspect MESH`: what texgen reads in a mesh file, before a long job."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect", help="what texgen reads in a mesh: topology, UVs, normals, texture, material",
        description="Load MESH as texgen texture would and print what it holds: faces and polygons, UV islands, "
                    "how much of the texture the UVs cover and where they overlap, the file's normals, texture "
                    "and material, whether the GLB output is the file itself with the new map, and what loading "
                    "changed.")
    parser.add_argument("mesh", type=Path)
    parser.add_argument("--object", default="", help="one object of a multi-object file (default: merge all)")
    parser.add_argument("--unwrap", default="auto", choices=["auto", "always", "never"],
                        help="as texgen texture: auto unwraps only a mesh without UVs")
    parser.add_argument("--texture-size", type=int, default=1024, help="measure UV coverage at this size (1024)")
    parser.add_argument("--uv-png", type=Path, help="also draw the UV layout over the texture into this PNG "
                                                    "(islands tinted, overlaps red)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..export import atomic_write, png_bytes
    from ..inspection import inspect_mesh, uv_layout
    from ..mesh import load_mesh
    from ..texels import TexelMap

    mesh = load_mesh(args.mesh, object_name=args.object, unwrap=args.unwrap)
    texels = TexelMap.build(mesh, args.texture_size) if mesh.has_uvs else None
    facts = inspect_mesh(mesh, texels)
    if args.uv_png and texels is None:
        print(f"texgen: {mesh.name} has no UVs, so there is no UV layout to draw", file=sys.stderr)
    elif args.uv_png:
        atomic_write(args.uv_png, png_bytes(uv_layout(mesh, texels)))
    if args.json:
        print(json.dumps(facts))
        return 0
    for key, value in facts.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {_short(v)}" for k, v in value.items())
        elif isinstance(value, list):
            value = "; ".join(value) if value else "none"
        print(f"{key:<20} {value}")
    return 0


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return str(value)
