"""`texgen texture MESH --prompt TEXT --out DIR`: the main job."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .options import OptionTable, add_load_options, add_options, load_options_for, settings_values
from .progress import progress_bar

TEXTURE_OPTIONS: OptionTable = {
    "--prompt": ("prompt", str, "what to paint"),
    "--negative-prompt": ("negative_prompt", str, "what not to paint"),
    "--model": ("model", str, "model spec: preset, hub id, local folder, .safetensors file, model card "
                               ".toml, or oracle:REFERENCE_MESH (default sd15-controlnet-depth)"),
    "--views": ("views", str, "number of views, or 'auto' for next-best-view selection (default 8)"),
    "--max-views": ("max_views", int, "view budget for --views auto (default 12)"),
    "--view-size": ("view_size", int, "view resolution in pixels, a multiple of 8 (default 768)"),
    "--texture-size": ("texture_size", int, "UV texture resolution in texels (default 1024)"),
    "--steps": ("steps", int, "denoising steps per view (default 25)"),
    "--guidance": ("guidance", float, "classifier-free guidance scale (default 7.5)"),
    "--controlnet-scale": ("controlnet_scale", float, "depth conditioning strength (default 1.0)"),
    "--refine-strength": ("refine_strength", float, "denoising strength where a view refines (default 0.4)"),
    "--init-texture": ("init_texture", str, "start from a texture and repaint it: 'mesh' (the mesh's own "
                                            "base-colour map) or an image file (default: paint from nothing)"),
    "--init-strength": ("init_strength", float, "denoising strength of the views over --init-texture, 0 keeps "
                                                "it, 1 repaints it (default 0.6)"),
    "--seed": ("seed", int, "random seed (default 0)"),
    "--device": ("device", str, "cuda, mps, cpu or auto (default auto)"),
    "--unwrap": ("unwrap", str, "auto (only when the mesh has no UVs), always or never"),
    "--object": ("object", str, "the object to texture in a multi-object file (default: merge all)"),
    "--pad": ("pad", int, "texels of padding around UV islands (default 8)"),
}


def add_texture_options(parser: argparse.ArgumentParser) -> None:
    """The options of `texgen texture`, shared with `texgen batch` as batch-wide defaults."""
    group = add_options(parser, TEXTURE_OPTIONS, "texture options (also keys of --config's [texture] table)")
    group.add_argument("--no-direction-prompts", dest="direction_prompts", action="store_false", default=None,
                       help="do not add 'front view', 'side view'... to each view's prompt")


def settings_from_args(args: argparse.Namespace):
    """TextureSettings from --config, then the flags given on the command line."""
    from ..settings import TextureSettings, settings_from_mapping

    values = settings_values(args, TEXTURE_OPTIONS, TextureSettings, "texture")
    if args.direction_prompts is not None:
        values["direction_prompts"] = args.direction_prompts
    if values["views"] != "auto":
        values["views"] = _int_or_auto(values["views"])
    return settings_from_mapping(TextureSettings, values, where="options")


def _int_or_auto(value: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return value  # validation names the key


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("texture", help="texture a mesh from a prompt",
                                   description="Paint MESH from PROMPT into its own UV map and write "
                                               "NAME.glb, NAME.obj/.mtl, NAME_albedo.png, NAME_report.json "
                                               "and NAME_preview.png into --out.")
    parser.add_argument("mesh", type=Path, help="OBJ, GLB/glTF, PLY, STL or OFF file")
    add_texture_options(parser)
    add_load_options(parser)
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--name", help="output file stem (default: the mesh file's stem)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    from ..client_jobs import add_server_arguments

    add_server_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import TexgenError
    from ..export import output_paths, refuse_existing, safe_name, write_outputs

    settings = settings_from_args(args)
    if not settings.prompt:
        raise TexgenError("a prompt is needed: --prompt TEXT (or prompt = \"...\" in --config)")
    load_options = load_options_for(args, f"the server at {args.server}" if args.server else "")
    name = safe_name(args.name or args.mesh.stem)
    if not args.overwrite:  # fail before hours of painting, not after
        refuse_existing(output_paths(args.out, name).values())
    with progress_bar() as progress:
        if args.server:
            from ..client_jobs import run_remote

            result = run_remote(args.server, args.mesh, settings, server_key=args.server_key,
                                client_key=args.client_key, progress=progress, timeout=args.server_timeout)
        else:
            from ..pipeline import texture_mesh

            result = texture_mesh(args.mesh, settings=settings, progress=progress, load_options=load_options)
    paths = write_outputs(result, args.out, name, overwrite=args.overwrite)
    report = result.report
    print(f"coverage by views {report.get('coverage_views', 0):.1%}, seam ratio {report.get('seam_ratio', 0):.2f}, "
          f"{report.get('seconds', {}).get('total', 0):.1f} s")
    for path in paths.values():
        print(path)
    return 0
