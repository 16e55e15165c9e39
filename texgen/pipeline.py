"""The paint loop: texture a whole mesh from a prompt, view after view, into its own UVs.

``texture_mesh`` reads top to bottom like a diffusers pipeline:

1. check the settings, load the mesh (unwrapping it only when it has no UVs) and the model
2. rasterise the UV layout once (TexelMap; on a background thread while the model loads and, on a
   fixed schedule, while the first view generates: no texel is needed before its projection)
3. plan the views: a fixed schedule, or next-best-view selection from candidates
4. for each view: render depth and the current paint, build the trimap, generate or inpaint,
   back-project only what the trimap allows
5. fill what no view saw, smooth the seams, pad the islands
6. report and preview

The trimap follows TEXTure and Text2Tex: *generate* texels are visible and never painted,
*refine* texels are seen clearly more frontally than by the view that painted them (cos
better by ``REFINE_MARGIN``), *keep* texels are everything else and are never written.
Started from a texture (``init_texture``), every texel is painted by no view: a view refines
what it sees of it with ``init_strength``, and texels no view sees keep it.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import cv2
import numpy as np
import torch

from . import __version__
from .camera import Camera, candidate_views, default_views, orbit_camera
from .diffusion.base import Generator, SamplerSettings, ViewBatch, generator_report
from .errors import MeshError
from .fill import fill_unseen, pad_texture
from .images import resample_square, starting_image
from .mesh import Mesh, apply_unwrap, load_mesh
from .progress import CancelToken, ProgressCallback, ProgressEvent, Timer, no_progress
from .project import ProjectionSettings, TextureState, ViewSamples, dilate, sample_colour, sample_view, sample_views
from .render import Renderer, ViewBuffers, texture_bytes
from .result import TextureResult, with_new_base_colour
from .seam_blend import band_for_size, smooth_seams
from .seams import edge_pairs, seam_stats
from .settings import LoadOptions, TextureSettings, settings_from_mapping
from .texels import TexelMap, build_in_background

log = logging.getLogger(__name__)

REFINE_MARGIN = 0.2  # TEXTure: refine when the view's cos beats the painting view's by this much
GENERATE_DILATE_PX = 5  # grow the generate mask so the model blends into the known paint
MIN_NEW_FRACTION = 0.01  # next-best-view stops when the best candidate adds less (Hunyuan3D-2)
PLANNING_SIZE = 256  # render size of the candidate views in next-best-view planning
UNPAINTED_GREY = 0.5


@dataclass
class ViewRecord:
    """What one view did, for the report and the preview.

    depth, image : (H, W) float and (3, H, W) float of the view
    mask : (H, W) float, how much each pixel was allowed to change
    """

    camera: Camera
    prompt: str
    depth: torch.Tensor
    image: torch.Tensor
    mask: torch.Tensor
    generated: int = 0
    refined: int = 0

    def summary(self, total: int) -> dict:
        return {"azimuth": self.camera.azimuth, "elevation": self.camera.elevation, "prompt": self.prompt,
                "generated_fraction": self.generated / max(total, 1),
                "refined_fraction": self.refined / max(total, 1)}


@dataclass
class Trimap:
    """Per-texel decision of one view: generate (M,) bool, refine (M,) bool; the rest is keep."""

    generate: torch.Tensor
    refine: torch.Tensor


def resolve_settings(prompt: Optional[str], settings: Optional[TextureSettings], overrides: dict) -> TextureSettings:
    """One validated settings object from the defaults, ``settings``, ``prompt`` and keyword overrides."""
    values = (settings or TextureSettings()).to_dict()
    if prompt is not None:
        values["prompt"] = prompt
    values.update(overrides)
    return settings_from_mapping(TextureSettings, values, where="texture settings")


def prepare_mesh(mesh: Union[Mesh, str, Path], settings: TextureSettings) -> Mesh:
    """Load (or take) the mesh and make sure it has a UV layout, as ``settings.unwrap`` says. A given
    Mesh is left as it is: unwrapping and the run's notes go to a copy (its arrays are shared)."""
    if isinstance(mesh, Mesh):
        mesh = apply_unwrap(dataclasses.replace(mesh, notes=list(mesh.notes)), settings.unwrap)
    else:
        mesh = load_mesh(mesh, object_name=settings.object, unwrap=settings.unwrap)
    if not mesh.has_uvs:
        raise MeshError(f"{mesh.name}: the mesh has no UV map and unwrap is 'never'; "
                        "use --unwrap auto to let texgen unwrap it with xatlas")
    return mesh


def starting_texture(mesh: Mesh, settings: TextureSettings) -> Optional[np.ndarray]:
    """The (N, N, 3) float32 texture ``settings.init_texture`` names (:func:`starting_image`), at the
    texture size, or None when painting starts from nothing."""
    if not settings.init_texture:
        return None
    image = starting_image(mesh, settings.init_texture)
    if image.shape[:2] != (settings.texture_size,) * 2:
        mesh.notes.append(f"started from a {image.shape[1]}x{image.shape[0]} texture, resampled to the texture "
                          f"size {settings.texture_size}x{settings.texture_size}")
    return resample_square(image, settings.texture_size).astype(np.float32) / 255.0


def build_trimap(state: TextureState, samples: ViewSamples) -> Trimap:
    """Generate = visible and never painted; refine = visible and seen much better than before."""
    painted = state.painted[samples.texel]
    better = samples.cos > state.best_cos[samples.texel] + REFINE_MARGIN
    return Trimap(samples.scatter(~painted, False), samples.scatter(painted & better, False))


def pixel_mask(renderer: Renderer, camera: Camera, foreground: torch.Tensor, state: TextureState, trimap: Trimap,
               refine_strength: float, init_strength: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Render the paint and the trimap into the view.

    foreground : (H, W) bool, the view's mesh pixels (``ViewBuffers.mask``)

    returns : the current paint (3, H, W) with unpainted pixels grey, and the mask (H, W):
        1 where the model generates (unpainted surface, dilated), ``refine_strength`` where it
        refines what a view painted, ``init_strength`` where it refines the starting texture
        (:meth:`TextureState.start_from`), 0 where it keeps
    """
    texels = state.texels
    # the paint (grey where unpainted) and the records as the 8-bit texels render_texture would make (rounded
    # half to even, as texture_bytes does): per valid texel in torch and padded as bytes, not as a float image
    # 4x the size, nor with numpy's strided copies (twice as slow)
    paint = torch.where(state.painted[:, None], state.color, UNPAINTED_GREY).clamp_(0, 1).mul_(255).round_()
    records = torch.stack([state.painted, trimap.refine, trimap.refine & ~state.seen], dim=1).to(torch.uint8).mul_(255)
    per_texel = torch.cat([paint.to(torch.uint8), records], dim=1)
    image = torch.zeros((texels.size * texels.size, 6), dtype=torch.uint8)
    image[:, :3] = int(texture_bytes(np.float32(UNPAINTED_GREY)))
    image.index_copy_(0, texels.index, per_texel)
    planes = cv2.split(pad_texture(texels, image.numpy().reshape(texels.size, texels.size, 6), 2))  # contiguous each
    rendered, flags = (image[0] for image in renderer.render_textures(
        [camera], [cv2.merge(planes[:3]), cv2.merge(planes[3:])], smooth=[True, False]))
    unpainted = (flags[0] < 0.5) & foreground
    unpainted = dilate(unpainted.float()[None], GENERATE_DILATE_PX)[0] > 0
    strength = torch.where(flags[2] > 0.5, init_strength, refine_strength)
    mask = torch.where(unpainted, 1.0, torch.where((flags[1] > 0.5) & foreground, strength, 0.0))
    image = torch.where(foreground[None], rendered, torch.full_like(rendered, UNPAINTED_GREY))
    return image, mask


class NextBestView:
    """Picks, among candidate cameras, the one that shows the most unpainted or badly seen surface."""

    def __init__(self, texels: TexelMap, renderer: Renderer, settings: TextureSettings,
                 projection: ProjectionSettings):
        self.settings = settings
        self.candidates = candidate_views(PLANNING_SIZE)
        buffers = renderer.render(self.candidates)
        self.visibility = list(sample_views(texels, self.candidates, buffers, None, projection))
        self.used: set[int] = set()

    def next(self, state: TextureState) -> Optional[Camera]:
        """The best unused candidate at full view size, or None when none adds enough."""
        best, best_heat, best_new = None, 0.0, 0.0
        for index, samples in enumerate(self.visibility):
            if index in self.used:
                continue
            trimap = build_trimap(state, samples)
            heat = float(trimap.generate.sum()) + 0.5 * float(trimap.refine.sum())  # Text2Tex's heat
            if heat > best_heat:  # new: what no view has painted yet (a starting texture's texels too)
                fresh = trimap.generate | (trimap.refine & ~state.seen)
                best, best_heat, best_new = index, heat, float(fresh.float().mean())
        if best is None or (state.painted.any() and best_new < MIN_NEW_FRACTION):
            return None
        self.used.add(best)
        chosen = self.candidates[best]
        return orbit_camera(chosen.azimuth, chosen.elevation, self.settings.view_size)


def texture_mesh(mesh: Union[Mesh, str, Path], prompt: Optional[str] = None, *,
                 settings: Optional[TextureSettings] = None, generator: Optional[Generator] = None,
                 progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
                 projection: ProjectionSettings = ProjectionSettings(), load_options: Optional[LoadOptions] = None,
                 **overrides) -> TextureResult:
    """Texture ``mesh`` from ``prompt`` into its own UV map.

    mesh : a Mesh (left as it is) or a path to a mesh file
    settings : defaults for every option; ``prompt`` and keyword ``overrides`` win over them
    generator : a loaded Generator; by default ``settings.model`` is loaded (and cached) with ``load_options``
    load_options : how ``settings.model`` is loaded when no generator is given (default LoadOptions()); the
        report records the options the generator was loaded with
    progress : receives ProgressEvents; cancel : checked between steps and views
    """
    progress = progress or no_progress
    cancel = cancel or CancelToken()
    timer = Timer()

    # 1. check settings, load the mesh and the model (the UV layout rasterises meanwhile, see 2.)
    settings = resolve_settings(prompt, settings, overrides)
    progress(ProgressEvent("load", message="loading the mesh"))
    mesh = prepare_mesh(mesh, settings)
    start = starting_texture(mesh, settings)  # read now: a bad image is reported before the model loads
    timer.lap("load_mesh")
    texels_ready = build_in_background(mesh, settings.texture_size)
    if generator is None:
        from .diffusion import load_generator

        progress(ProgressEvent("load", message=f"loading model {settings.model}"))
        load_options = load_options or LoadOptions()
        generator = load_generator(settings.model, device=settings.device, options=load_options)
        timer.lap("load_model")
    cancel.raise_if_cancelled()

    # 2. the UV layout, rasterised once: waited for when a view first needs it
    state: Optional[TextureState] = None

    def texture_state() -> TextureState:
        nonlocal state
        if state is None:
            state = TextureState(texels_ready.result())
            if start is not None:
                state.start_from(torch.from_numpy(state.texels.gather(start)))
            timer.lap("rasterise_uv")  # what was left of it when it was first needed
        return state

    # 3. plan the views
    progress(ProgressEvent("plan", message="planning views"))
    renderer = Renderer(mesh)
    try:
        # a fixed schedule for a view count; for "auto", views are chosen as painting goes
        cameras = None if settings.views == "auto" else default_views(int(settings.views), settings.view_size)
        if start is not None:  # the first view refines the starting texture: it needs it before it runs
            texture_state()
        planner = None if cameras is not None else NextBestView(texture_state().texels, renderer, settings, projection)
        budget = len(cameras) if cameras is not None else settings.max_views
        timer.lap("plan")

        # 4. paint view after view; the first view of a schedule generates while the layout rasterises
        records: list[ViewRecord] = []
        for index in range(budget):
            cancel.raise_if_cancelled()
            camera = cameras[index] if cameras is not None else planner.next(texture_state())
            if camera is None:
                break
            records.append(paint_view(index, budget, camera, mesh, renderer,
                                      texture_state if state is None else state, generator, settings, projection,
                                      timer, progress, cancel))

        # 5. fill, smooth seams, pad
        progress(ProgressEvent("fill", message="filling unseen texels"))
        state = texture_state()
        texels = state.texels
        painted, seen = state.painted.clone(), state.seen  # seen is computed afresh: no copy needed
        texels.prepare_padding(settings.pad)
        color = fill_unseen(texels, state.color, painted)
        progress(ProgressEvent("fill", message="smoothing seams"))
        pairs = edge_pairs(mesh)  # once, for the smoothing and the report's seam ratio
        color = smooth_seams(mesh, texels, color, *band_for_size(texels.size), confidence=painted.float(), pairs=pairs)
        texture = pad_texture(texels, texels.to_image(color.clamp(0, 1)), settings.pad)
        texture8 = texture_bytes(texture)
        timer.lap("fill")

        # 6. report and preview
        seams = seam_stats(mesh, texture8, pairs=pairs)
        timer.lap("metrics")
        preview = _preview(records, texture8, mesh, None if start is None else texture_bytes(start))
        timer.lap("preview")
    finally:
        renderer.close()
    coverage = float(torch.isfinite(color).all(dim=1).float().mean())
    report = _report(mesh, settings, generator, texels, seen, coverage, records, seams.as_dict(),
                     timer.timings)
    progress(ProgressEvent("done", views=len(records), message="done"))
    return TextureResult(with_new_base_colour(mesh), texture8, report, preview)


def paint_view(index: int, budget: int, camera: Camera, mesh: Mesh, renderer: Renderer,
               state: Union[TextureState, Callable[[], TextureState]], generator: Generator, settings: TextureSettings,
               projection: ProjectionSettings, timer: Timer, progress: ProgressCallback,
               cancel: CancelToken) -> ViewRecord:
    """Render, build the trimap, generate or inpaint, and back-project one view.

    state : the texture so far, or (for a first view, with nothing painted) a function that gives
        it, called once the model has run: no texel is needed before then
    """
    progress(ProgressEvent("render", view=index, views=budget, message=f"view {index + 1}: {camera.direction_word}"))
    buffers: ViewBuffers = renderer.render([camera])

    def seen_by_the_view(state: TextureState) -> tuple[ViewSamples, Trimap]:
        visibility = sample_view(state.texels, camera, buffers.depth[0], None, projection, buffers.normals[0])
        return visibility, build_trimap(state, visibility)

    if callable(state):
        first, visibility, trimap = True, None, None
    else:
        visibility, trimap = seen_by_the_view(state)
        first = not bool(state.painted.any())
    if first:
        image = mask = None
    else:
        image, mask = pixel_mask(renderer, camera, buffers.mask[0], state, trimap, settings.refine_strength,
                                 settings.init_strength)
    prompt = settings.prompt + (f", {camera.direction_word}" if settings.direction_prompts else "")
    batch = ViewBatch([prompt], buffers.control_depth(), settings.negative_prompt, [camera],
                      None if first else image[None], None if first else mask[None], view_indices=[index])
    sampler = SamplerSettings(steps=settings.steps, guidance=settings.guidance,
                              controlnet_scale=settings.controlnet_scale, seed=settings.seed)
    timer.lap("render")

    def step(event: ProgressEvent) -> None:
        progress(dataclasses.replace(event, view=index, views=budget))

    if first:
        generated = generator.generate(batch, sampler, step, cancel)[0]
    else:
        generated = generator.inpaint(batch, sampler, step, cancel)[0]
    timer.lap("diffusion")

    progress(ProgressEvent("project", view=index, views=budget))
    if callable(state):
        state = state()
        visibility, trimap = seen_by_the_view(state)
    samples = sample_colour(state.texels, camera, visibility, generated)
    state.replace(samples, index, trimap.generate)
    state.replace(samples, index, trimap.refine)
    timer.lap("project")
    return ViewRecord(camera, prompt, batch.depth[0], generated,
                      torch.ones_like(batch.depth[0]) if mask is None else mask,
                      int(trimap.generate.sum()), int(trimap.refine.sum()))


def _preview(records: list[ViewRecord], texture: np.ndarray, mesh: Mesh, start: Optional[np.ndarray] = None
             ) -> np.ndarray:
    """Contact sheet: each view's depth, image and mask, the starting texture (when there is one) beside
    the UV texture, renders of the result."""
    from .export import contact_sheet, texture_renders, view_picture

    tiles = []
    for number, record in enumerate(records, 1):
        tiles += [(f"view {number} depth", view_picture(record.depth)),
                  (f"view {number} {record.camera.direction_word}", view_picture(record.image)),
                  (f"view {number} mask", view_picture(record.mask))]
    if start is not None:
        tiles.append(("starting texture", start))
    tiles.append(("UV texture", texture))
    tiles += texture_renders(mesh, texture)
    return contact_sheet(tiles, columns=6, tile_size=256)


def _report(mesh: Mesh, settings: TextureSettings, generator: Generator,
            texels: TexelMap, seen: torch.Tensor, coverage: float, records: list[ViewRecord], seams: dict,
            timings: dict[str, float]) -> dict:
    """The report.
    seen : (M,) bool the texels views painted"""
    diffusion = timings.get("diffusion", 0.0)
    total = sum(timings.values())
    coverage_views = float(seen.float().mean())
    return {
        "texgen_version": __version__,
        "mesh": {"name": mesh.name, "vertices": len(mesh.positions), "faces": len(mesh.faces),
                 "notes": list(mesh.notes)},
        "settings": settings.to_dict(),
        "seed": settings.seed,
        "model": settings.model,
        **generator_report(generator),
        "views": [record.summary(texels.count) for record in records],
        "coverage_views": coverage_views,
        "coverage": coverage,
        "unseen_fraction": 1.0 - coverage_views,
        "overlap_fraction": float(texels.overlap.float().mean()),
        **seams,
        "timings": timings,
        "seconds": {"diffusion": diffusion, "geometry": total - diffusion, "total": total},
    }
