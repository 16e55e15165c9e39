"""Texture meshes of a .blend file from the command line, with no UI (``blender -b`` has no event
loop, so this uses the add-on's synchronous API rather than its modal operator)::

    blender -b scene.blend --python texture_selected.py -- --prompt "mossy stone wall" \
        [--server tcp://127.0.0.1:5555] [--objects Cube Rock] [--seed 7] [--save textured.blend]

Needs the texgen add-on enabled in Blender's preferences and a running ``texgen serve``.
Without --objects it textures the selected meshes. It saves the file in place unless --save names another.
"""

from __future__ import annotations

import argparse
import sys

import bpy


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="texture_selected.py")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--server", help="texgen server address (default: the add-on's preferences)")
    parser.add_argument("--objects", nargs="+", help="object names (default: the selected meshes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--views", type=int, default=8, help="0 chooses the views automatically")
    parser.add_argument("--view-size", type=int, default=768)
    parser.add_argument("--texture-size", type=int, default=1024)
    parser.add_argument("--together", action="store_true", help="paint all objects as one scene")
    parser.add_argument("--save", help="where to save the .blend (default: in place)")
    args = parser.parse_args(argv)
    try:
        import texgen_addon
    except ImportError:
        print("The texgen add-on is not enabled: install its zip (Preferences > Get Extensions > Install from "
              "Disk) and enable it, then run this again.", file=sys.stderr)
        return 2
    if args.objects:
        objects = [bpy.data.objects[name] for name in args.objects]
    else:
        objects = [obj for obj in bpy.context.view_layer.objects if obj.select_get() and obj.type == "MESH"]
    try:
        images = texgen_addon.texture_objects(objects, args.prompt, server=args.server, seed=args.seed,
                                              views=args.views, view_size=args.view_size,
                                              texture_size=args.texture_size,
                                              together=args.together, create_uvs=True)
    except texgen_addon.TexgenAddonError as exc:
        print(f"texgen: {exc}", file=sys.stderr)
        return 1
    for image in images:
        print(f"texgen: painted {image.name} ({image.size[0]}x{image.size[1]})")
    target = args.save or bpy.data.filepath
    if target:
        bpy.ops.wm.save_as_mainfile(filepath=target)
        print(f"texgen: saved {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []))
