"""`texgen inpaint-seams MESH --out DIR`: repair the seams and holes of an existing texture."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import OptionTable, add_load_options, add_options, load_options_for, settings_values
from .progress import progress_bar

SEAM_OPTIONS: OptionTable = {
    "--method": ("method", str, "classical (no model, default) or diffusion"),
    "--band": ("band", int, "repair band width on each side of a seam, in texels (default 8)"),
    "--threshold": ("threshold", str, "repair seams whose colour jump is above this Delta E, or 'all' (default 2.3)"),
    "--hard-edge-deg": ("hard_edge_deg", float, "leave seams alone where the surface turns by more than this many "
                        "degrees, as colours may change there by design (default 30; 180 repairs every seam)"),
    "--hole-color": ("hole_color", str, "#RRGGBB colour of unpainted texels (default: only transparent texels)"),
    "--hole-tolerance": ("hole_tolerance", int, "8-bit levels a texel may differ from --hole-color (default 2)"),
    "--texture-size": ("texture_size", int, "resample the texture to this square size first (default: keep)"),
    "--prompt": ("prompt", str, "diffusion: what the surface shows (default empty: continue what is there)"),
    "--negative-prompt": ("negative_prompt", str, "diffusion: what not to paint"),
    "--model": ("model", str, "diffusion: model spec (preset, hub id, folder, .safetensors, model card .toml)"),
    "--seed": ("seed", int, "diffusion: random seed (default 0)"),
    "--steps": ("steps", int, "diffusion: denoising steps (default 25)"),
    "--strength": ("strength", float, "diffusion: denoising strength in the band (default 0.8; holes 1.0)"),
    "--views": ("views", int, "diffusion: at most this many views on the worst seams and holes (default 4)"),
    "--view-size": ("view_size", int, "diffusion: view resolution in pixels, a multiple of 8 (default 512)"),
    "--device": ("device", str, "diffusion: cuda, mps, cpu or auto (default auto)"),
    "--object": ("object", str, "the object to repair in a multi-object file (default: merge all)"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inpaint-seams", help="repair hard seams and unpainted holes of an existing texture",
        description="Repair the texture of MESH where UV islands meet with a hard line, and fill its unpainted "
                    "holes; every other texel stays exactly as it was. Writes NAME_albedo.png, NAME.glb, "
                    "NAME.obj/.mtl, NAME_report.json and NAME_preview.png into --out.")
    parser.add_argument("mesh", type=Path, help="OBJ, GLB/glTF, PLY, STL or OFF file with UVs")
    parser.add_argument("--texture", type=Path, help="the texture to repair (default: the mesh's own base-colour map)")
    add_options(parser, SEAM_OPTIONS, "repair options (also keys of --config's [inpaint_seams] table)")
    add_load_options(parser)
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--name", help="output file stem (default: the mesh file's stem)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    from ..client_jobs import add_server_arguments

    add_server_arguments(parser)
    parser.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace):
    """SeamSettings from --config, then the flags given on the command line."""
    from ..seams_repair import SeamSettings
    from ..settings import settings_from_mapping

    return settings_from_mapping(SeamSettings, settings_values(args, SEAM_OPTIONS, SeamSettings, "inpaint_seams"),
                                 where="options")


def run(args: argparse.Namespace) -> int:
    from ..export import output_paths, refuse_existing, safe_name, write_outputs
    from ..seams_repair import inpaint_seams

    settings = settings_from_args(args)
    load_options = load_options_for(args, f"the server at {args.server}" if args.server else "")
    name = safe_name(args.name or args.mesh.stem)
    if not args.overwrite:  # fail before the work, not after
        refuse_existing(output_paths(args.out, name).values())
    with progress_bar() as progress:
        if args.server:
            from ..client_jobs import run_remote

            result = run_remote(args.server, args.mesh, settings, job="inpaint_seams", texture=args.texture,
                                server_key=args.server_key, client_key=args.client_key, progress=progress,
                                timeout=args.server_timeout)
        else:
            result = inpaint_seams(args.mesh, args.texture, settings=settings, progress=progress,
                                   load_options=load_options)
    paths = write_outputs(result, args.out, name, overwrite=args.overwrite)
    report = result.report
    hard = f" ({report['seams_on_hard_edges']} on hard edges left alone)" if report["seams_on_hard_edges"] else ""
    print(f"{report['seams_repaired']} of {report['seam_edges']} seam edges repaired{hard}: seam ratio "
          f"{report['seam_ratio_before']:.2f} -> {report['seam_ratio_after']:.2f}, Delta E "
          f"{report['seam_delta_e_before']:.2f} -> {report['seam_delta_e_after']:.2f}; holes "
          f"{report['holes_before']} -> {report['holes_after']} texels")
    for path in paths.values():
        print(path)
    return 0
