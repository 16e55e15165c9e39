"""Repair an existing texture: hard lines where UV islands meet, and unpainted holes.

``inpaint_seams`` reads top to bottom:

1. check the settings, load the mesh (it must have UVs) and the texture (resampled to a square
   with a warning when its size does not fit the UV layout)
2. rasterise the UV layout, find the holes (texels inside UV triangles that are transparent or
   of the "unpainted" colour) and measure every seam's colour jump (shared REFERENCE.md, 3)
3. fill the holes from the nearest painted surface in 3D, pick the seams above the threshold
   and build the repair band around them (``texgen.seam_blend.seam_band``)
4. repair: ``classical`` blends across the seams (``smooth_seams``); ``diffusion`` renders
   views centred on the worst regions, inpaints the band and holes with depth conditioning and
   projects the result back into the band and holes only, then blends the seams
5. write back only the band and the holes: every other texel stays bit-for-bit as it was
6. report and preview
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import cv2
import numpy as np
import torch

from . import __version__
from .errors import ConfigError, MeshError
from .diffusion.base import generator_report
from .fill import fill_unseen, pad_texture
from .images import read_texture, resample_square
from .mesh import Mesh, load_mesh
from .progress import CancelToken, ProgressCallback, ProgressEvent, Timer, no_progress
from .render import texture_bytes
from .result import TextureResult
from .seam_blend import SeamBand, seam_band, smooth_seams
from .seams import HARD_EDGE_DEG, edge_pairs, edge_turns, seam_stats
from .settings import DEFAULT_MODEL, LoadOptions, settings_from_mapping
from .texels import TexelMap

ALPHA_HOLE = 128  # texels with less alpha than this are holes
CORE_FRACTION = 0.25  # the band's full-strength core, as a fraction of its width
CROPS = 3  # worst seams shown before/after in the preview
HARD_EDGE_TINT = (0, 255, 0)  # the preview's lines along seams left alone on hard edges


@dataclass
class SeamSettings:
    """Everything that decides what ``inpaint_seams`` repairs and how.

    method : "classical" (no model) or "diffusion" (depth-conditioned inpainting)
    band : width of the repair band on each side of a seam, in texels
    threshold : repair seams whose mean colour jump is above this (CIE76 Delta E), or "all"
    hard_edge_deg : seams where the surface turns by more than this (:func:`texgen.seams.edge_turns`)
        are hard edges, where colours may change by design (an eye's rim, the cut of a fruit, a
        box's corner): they are left alone; 180 repairs them too
    hole_color : "#RRGGBB" colour that marks unpainted texels ("" = only transparent texels)
    hole_tolerance : how far (8-bit levels per channel) a texel may be from ``hole_color``
    texture_size : resample the texture to this square size first (0 = keep its own size)
    views, view_size, strength : diffusion: at most this many views of view_size pixels,
        centred on the worst seams and holes; ``strength`` is the denoising strength in the band
        (holes are always painted from scratch)
    """

    method: str = "classical"
    band: int = 8
    threshold: Union[float, str] = 2.3  # Union: settings_from_mapping reads typing.Union
    hard_edge_deg: float = HARD_EDGE_DEG
    hole_color: str = ""
    hole_tolerance: int = 2
    texture_size: int = 0
    prompt: str = ""
    negative_prompt: str = ""
    model: str = DEFAULT_MODEL
    seed: int = 0
    steps: int = 25
    guidance: float = 7.5
    controlnet_scale: float = 1.0
    strength: float = 0.8
    views: int = 4
    view_size: int = 512
    object: str = ""
    device: str = "auto"

    def validate(self) -> SeamSettings:
        """Check every value; raise ConfigError naming the first bad key."""
        if self.method not in ("classical", "diffusion"):
            raise ConfigError(f"method: must be classical or diffusion, got {self.method!r}")
        if not 1 <= self.band <= 256:
            raise ConfigError(f"band: must be between 1 and 256 texels, got {self.band}")
        if isinstance(self.threshold, str) and self.threshold != "all":
            try:
                self.threshold = float(self.threshold)
            except ValueError:
                raise ConfigError(f"threshold: expected a Delta E number or 'all', got {self.threshold!r}") from None
        if isinstance(self.threshold, float) and not (math.isfinite(self.threshold) and self.threshold >= 0):
            raise ConfigError(f"threshold: must be a Delta E >= 0 or 'all', got {self.threshold}")
        if not 0 < self.hard_edge_deg <= 180:
            raise ConfigError(f"hard_edge_deg: must be in (0, 180] degrees, got {self.hard_edge_deg}")
        parse_color(self.hole_color)
        if not 0 <= self.hole_tolerance <= 255:
            raise ConfigError(f"hole_tolerance: must be between 0 and 255, got {self.hole_tolerance}")
        if self.texture_size and not 16 <= self.texture_size <= 16384:
            raise ConfigError(f"texture_size: must be 0 (keep) or between 16 and 16384, got {self.texture_size}")
        if not 1 <= self.steps <= 1000:
            raise ConfigError(f"steps: must be between 1 and 1000, got {self.steps}")
        if not 0.0 < self.strength <= 1.0:
            raise ConfigError(f"strength: must be in (0, 1], got {self.strength}")
        if not 1 <= self.views <= 64:
            raise ConfigError(f"views: must be between 1 and 64, got {self.views}")
        if self.view_size < 64 or self.view_size > 4096 or self.view_size % 8:
            raise ConfigError(f"view_size: must be a multiple of 8 between 64 and 4096, got {self.view_size}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_color(text: str) -> np.ndarray | None:
    """``"#RRGGBB"``, ``"RRGGBB"`` or ``"R,G,B"`` (0-255) as a (3,) int array; "" gives None."""
    text = text.strip()
    if not text:
        return None
    if re.fullmatch(r"#?[0-9a-fA-F]{6}", text):
        return np.array([int(text.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4)])
    parts = text.split(",")
    if len(parts) == 3 and all(p.strip().isdigit() and int(p) <= 255 for p in parts):
        return np.array([int(p) for p in parts])
    raise ConfigError(f"hole_color: expected #RRGGBB or R,G,B (0-255), got {text!r}")


def resolve_settings(settings: SeamSettings | None, overrides: dict) -> SeamSettings:
    """One validated settings object from the defaults, ``settings`` and keyword overrides."""
    values = (settings or SeamSettings()).to_dict()
    values.update(overrides)
    return settings_from_mapping(SeamSettings, values, where="inpaint-seams settings")


# ---------------------------------------------------------------------- inputs


def prepare_mesh(mesh: Mesh | str | Path, settings: SeamSettings) -> Mesh:
    """Load (or take) the mesh; it must have its own UV map."""
    if not isinstance(mesh, Mesh):
        mesh = load_mesh(mesh, object_name=settings.object, unwrap="never")
    if not mesh.has_uvs:
        raise MeshError(f"{mesh.name}: the mesh has no UV map, so there is no texture layout to repair; "
                        "paint it with `texgen texture` instead")
    return mesh


def fit_texture(image: np.ndarray, size: int, notes: list[str]) -> np.ndarray:
    """Resample the texture to the square ``size`` the UV layout is rasterised at, with a warning.

    The UV square maps onto one N x N grid, so a non-square texture (or a requested
    ``texture_size``) is resampled; a texture that already fits is returned as it is.
    """
    if image.shape[:2] == (size, size):
        return image
    note = (f"the texture is {image.shape[1]}x{image.shape[0]} but the UV layout is repaired as a "
            f"{size}x{size} square; resampled it to {size}x{size}")
    warnings.warn(note, stacklevel=3)
    notes.append(note)
    return resample_square(image, size)


def find_holes(texels: TexelMap, image: np.ndarray, settings: SeamSettings) -> np.ndarray:
    """(M,) bool valid texels that are transparent or of the hole colour."""
    pixels = texels.gather(image).astype(np.int64)  # (M, 4)
    holes = pixels[:, 3] < ALPHA_HOLE
    color = parse_color(settings.hole_color)
    if color is not None:
        holes |= (np.abs(pixels[:, :3] - color) <= settings.hole_tolerance).all(axis=1)
    return holes


# ---------------------------------------------------------------------- the job


def inpaint_seams(mesh: Mesh | str | Path, texture: np.ndarray | str | Path | None = None, *,
                  settings: SeamSettings | None = None, generator=None,
                  progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
                  load_options: LoadOptions | None = None, **overrides) -> TextureResult:
    """Repair the seams and holes of ``mesh``'s texture; every other texel is kept bit-for-bit.

    mesh : a Mesh with UVs, or a mesh file
    texture : an image array or file, or None for the mesh's own base-colour map
    settings : defaults for every option; keyword ``overrides`` win over them
    generator : for ``method="diffusion"``, a loaded Generator (default: ``settings.model`` loaded with
        ``load_options``, when there are seams or holes to repaint); the report names it, and the options
        it was loaded with, when it painted
    returns : TextureResult with the repaired (N, N, 3) uint8 texture, a report and a preview
    """
    progress = progress or no_progress
    cancel = cancel or CancelToken()
    timer = Timer()

    # 1. settings, mesh, texture
    settings = resolve_settings(settings, overrides)
    progress(ProgressEvent("load", message="loading the mesh and the texture"))
    mesh = prepare_mesh(mesh, settings)
    notes: list[str] = []
    rgba = read_texture(texture, mesh)
    rgba = fit_texture(rgba, settings.texture_size or max(rgba.shape[:2]), notes)
    original = np.ascontiguousarray(rgba[:, :, :3])
    timer.lap("load")
    cancel.raise_if_cancelled()

    # 2. UV layout, holes, seams
    texels = TexelMap.build(mesh, original.shape[0])
    pairs = edge_pairs(mesh)
    holes = find_holes(texels, rgba, settings)
    before = seam_stats(mesh, original, pairs=pairs)
    timer.lap("measure")

    # 3. fill holes, pick seams, build the band
    progress(ProgressEvent("fill", message=f"filling {int(holes.sum())} hole texels"))
    color = torch.from_numpy(texels.gather(original).astype(np.float32) / 255.0)
    color = fill_unseen(texels, color, torch.from_numpy(~holes))
    filled = seam_stats(mesh, _to_uint8(texels, color, original), pairs=pairs)
    seams = np.flatnonzero(pairs.seam)
    jumps = np.full(len(seams), True) if settings.threshold == "all" else filled.per_seam > settings.threshold
    hard = edge_turns(mesh, pairs)[seams] > settings.hard_edge_deg
    chosen, left = np.zeros(len(pairs.seam), dtype=bool), np.zeros(len(pairs.seam), dtype=bool)
    chosen[seams], left[seams] = jumps & ~hard, jumps & hard
    if hard_left := int(left.sum()):
        notes.append(f"left {hard_left} seam edge{'s' * (hard_left != 1)} on hard edges alone: the surface turns "
                     f"by more than {settings.hard_edge_deg:g} degrees there, where colours may change by design; "
                     "--hard-edge-deg 180 (Hard Edges 180° in Blender) repairs them too")
    band = seam_band(mesh, texels, settings.band, chosen, pairs)
    core = CORE_FRACTION * settings.band
    timer.lap("fill")
    cancel.raise_if_cancelled()

    # 4. repair (a model only where there is something to repaint)
    views: list[dict] = []
    preview_views: list[tuple[str, np.ndarray]] = []
    repaints = settings.method == "diffusion" and bool(chosen.any() or holes.any())
    if settings.method == "diffusion" and not repaints:
        notes.append("nothing to repaint (no seam to repair, no holes): the model was not loaded")
    if repaints:
        from .seams_repair_diffusion import repaint

        if generator is None:
            from .diffusion import load_generator

            progress(ProgressEvent("load", message=f"loading model {settings.model}"))
            load_options = load_options or LoadOptions()
            generator = load_generator(settings.model, device=settings.device, options=load_options)
            timer.lap("load_model")
        color, views, preview_views = repaint(mesh, texels, color, band, holes, settings, generator,
                                              band.falloff(core, settings.band), progress, cancel, timer)
    color = smooth_seams(mesh, texels, color, settings.band, core, chosen, pairs=pairs, band=band)
    timer.lap("blend")

    # 5. write back the band and the holes only
    region = band.mask | holes
    repaired, _ = write_back(texels, original, color, region, settings.band)
    after = seam_stats(mesh, repaired, pairs=pairs)
    holes_after = int(find_holes(texels, np.dstack([repaired, np.full(repaired.shape[:2], 255, np.uint8)]),
                                 settings).sum())
    timer.lap("write_back")

    # 6. report and preview
    preview = _preview(mesh, original, repaired, texels, band, holes, pairs, before.per_seam, chosen, left,
                       preview_views)
    timer.lap("preview")
    report = {
        "texgen_version": __version__,
        "mesh": {"name": mesh.name, "vertices": len(mesh.positions), "faces": len(mesh.faces),
                 "notes": list(mesh.notes)},
        "settings": settings.to_dict(),
        "method": settings.method,
        **(generator_report(generator) if repaints else {"generator": None}),
        "texture_size": int(original.shape[0]),
        "notes": notes,
        "seam_edges": before.seam_edges,
        "seams_repaired": int(chosen.sum()),
        "seams_on_hard_edges": hard_left,
        "seam_ratio_before": before.seam_ratio, "seam_ratio_after": after.seam_ratio,
        "seam_delta_e_before": before.seam_delta_e, "seam_delta_e_after": after.seam_delta_e,
        "interior_delta_e": before.interior_delta_e,
        "holes_before": int(holes.sum()), "holes_after": holes_after,
        "band_texels": int(band.mask.sum()),
        "changed_texels": int((repaired != original).any(axis=2).sum()),
        "views": views,
        "timings": timer.timings,
    }
    progress(ProgressEvent("done", message="done"))
    return TextureResult(mesh, repaired, report, preview)


def _to_uint8(texels: TexelMap, color: torch.Tensor, original: np.ndarray) -> np.ndarray:
    """``original`` with its valid texels replaced by ``color`` (M, 3) in [0, 1]."""
    image = original.copy()
    flat = image.reshape(-1, 3)
    flat[texels.index.numpy()] = texture_bytes(color.numpy())
    return image


def write_back(texels: TexelMap, original: np.ndarray, color: torch.Tensor, region: np.ndarray,
               pad: int) -> tuple[np.ndarray, np.ndarray]:
    """``original`` with only the ``region`` texels (M,) bool replaced by ``color`` (M, 3) in [0, 1].

    The gutter outside the islands next to repaired texels (up to ``pad`` texels away) is padded
    again from them, so bilinear filtering and mipmaps do not bleed the old colours back in.
    returns : the (N, N, 3) uint8 texture and the (N, N) bool mask of the pixels it may differ in
    """
    inside = texels.to_image(region.astype(np.float32)) > 0
    gutter = (pad_texture(texels, inside.astype(np.float32), pad) > 0.5) & ~texels.valid
    image = original.copy()
    image.reshape(-1, 3)[texels.index.numpy()[region]] = texture_bytes(color.numpy()[region])
    image[gutter] = pad_texture(texels, image, pad)[gutter]
    return image, inside | gutter


# ---------------------------------------------------------------------- preview


def _preview(mesh: Mesh, before: np.ndarray, after: np.ndarray, texels: TexelMap, band: SeamBand,
             holes: np.ndarray, pairs, per_seam: np.ndarray, chosen: np.ndarray, left: np.ndarray,
             views: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """Contact sheet: the band (red), holes (blue) and the seams left alone on hard edges (green,
    ``left`` (E,) bool) over the texture, before and after, crops of the worst repaired seams before
    and after, renders of the result, and any views."""
    from .export import contact_sheet, texture_renders

    size = before.shape[0]
    overlay = before.astype(np.float32)
    for mask, tint in ((band.mask & ~holes, (255, 40, 40)), (holes, (40, 90, 255))):
        image = texels.to_image(mask.astype(np.float32)) > 0
        overlay[image] = 0.45 * overlay[image] + 0.55 * np.array(tint, np.float32)
    for uv in (pairs.uv_a[left], pairs.uv_b[left]):  # (L, 2, 2) both sides of each seam left alone
        pixels = np.stack([uv[..., 0] * size, (1.0 - uv[..., 1]) * size], axis=-1) - 0.5
        cv2.polylines(overlay, list(np.round(pixels).astype(np.int32)), False, HARD_EDGE_TINT,
                      thickness=max(1, size // 256))
    tiles = [("band (red), holes (blue), hard edges left (green)", overlay.astype(np.uint8)), ("before", before),
             ("after", after)]
    seams = np.flatnonzero(pairs.seam)
    worst = [k for k in np.argsort(-per_seam) if chosen[seams[k]]][:CROPS]
    half = max(16, size // 16)
    for rank, k in enumerate(worst, 1):
        centre = pairs.uv_a[seams[k]].mean(axis=0)
        row = int(np.clip((1.0 - centre[1]) * size, half, size - half))
        col = int(np.clip(centre[0] * size, half, size - half))
        window = (slice(row - half, row + half), slice(col - half, col + half))
        tiles += [(f"seam {rank} before ({per_seam[k]:.1f} dE)", before[window]), (f"seam {rank} after", after[window])]
    tiles += [(f"after, {label}", picture) for label, picture in texture_renders(mesh, after)]
    tiles += views
    return contact_sheet(tiles, columns=3, tile_size=256)


__all__ = [
    "SeamSettings",
    "find_holes",
    "fit_texture",
    "inpaint_seams",
    "parse_color",
    "read_texture",
    "write_back",
]
