"""Synchronous scripting API; it works under ``blender -b file.blend --python script.py``, where
no modal operator ever ticks. Once the add-on is enabled it is importable as ``texgen_addon``::

    import bpy, texgen_addon
    texgen_addon.texture_objects(bpy.context.selected_objects, "weathered oak", seed=7)
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Union

import bpy

from ..core.request import SeamOptions, ServerConfig, TextureOptions
from .props import ADDON_PACKAGE
from .runner import Placement, TexgenAddonError, check_server, load_remote, plan_inpaint, plan_texture, start

ServerArg = Union[str, ServerConfig, None]


def server_config(server: ServerArg = None) -> ServerConfig:
    """``server`` as a config: None takes the add-on's preferences, a string is an address."""
    if isinstance(server, ServerConfig):
        return server
    if isinstance(server, str):
        return ServerConfig(address=server)
    addon = bpy.context.preferences.addons.get(ADDON_PACKAGE)
    return addon.preferences.as_config() if addon is not None else ServerConfig()


def texture_objects(objects: Iterable[bpy.types.Object], prompt: str, *, server: ServerArg = None,
                    together: bool = False, space: str = "WORLD", create_uvs: bool = False, storage: str = "PACK",
                    keep_old_materials: bool = True, material_mode: str = "EXISTING", start_from_image: bool = False,
                    timeout: Optional[float] = None, **options: Any) -> list[bpy.types.Image]:
    """Texture ``objects`` and wait; return the images made or updated.

    material_mode : "EXISTING" paints a copy of each slot's material (its Principled BSDF's base colour
        reads the image; roughness, normal map and the rest stay), "NEW" puts one new material in every slot
    start_from_image : repaint the image each object's material shows on Base Color (with the option
        init_strength, 0 to 1) instead of painting from nothing; objects sent together start from
        their images side by side in the atlas
    options : texgen's names: negative_prompt, model, seed, views (0 = auto), view_size,
        texture_size, steps, guidance, init_strength
    Raises TexgenAddonError when any job fails; the objects that succeeded keep their results,
    the others are left as they were.
    """
    config = _checked(server)
    placement = Placement(storage, keep_old_materials, material_mode)
    settings = TextureOptions(prompt=prompt, **options)
    plans = plan_texture(bpy.context, list(objects), settings, space=space, together=together,
                         create_uvs=create_uvs, start_from_image=start_from_image)
    return _run(plans, config, placement, timeout)


def inpaint_seams(obj: bpy.types.Object, *, server: ServerArg = None, space: str = "WORLD",
                  timeout: Optional[float] = None, **options: Any) -> bpy.types.Image:
    """Repaint the UV-seam band of ``obj``'s texture in place and wait; return the image.

    options : texgen's seam names: method ("classical" or "diffusion"), band, threshold (0 = every
        seam), hard_edge_deg (180 = seams on hard edges too), and for diffusion prompt, negative_prompt,
        model, seed, views, view_size, steps, guidance
    """
    config = _checked(server)
    plan = plan_inpaint(bpy.context, obj, SeamOptions(**options), space=space)
    return _run([plan], config, Placement(), timeout)[0]


def test_connection(server: ServerArg = None) -> Any:
    """Say hello to the server; returns a ``Probe`` (status, message, models, device)."""
    return load_remote().probe(_checked(server))


def _checked(server: ServerArg) -> ServerConfig:
    """The server's config, validated, and allowed by Blender's online-access setting."""
    config = server_config(server)
    check_server(config)
    return config


def _run(plans: list, config: ServerConfig, placement: Placement, timeout: Optional[float]) -> list[bpy.types.Image]:
    run = start(plans, config, placement)
    try:
        run.wait(timeout_s=timeout)
    finally:
        run.close()
    problems = [text for level, text in run.reports if level != "INFO"]
    if problems:
        raise TexgenAddonError("; ".join(problems))
    return [bpy.data.images[name] for name in run.images]
