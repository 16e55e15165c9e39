"""The ``diffusion`` method of ``inpaint_seams``: views centred on the worst seams and holes,
depth-conditioned inpainting of the band and the holes, and back-projection into them only.

Cameras look at clusters of repair texels along their mean surface normal, framing the cluster.
The generator sees the current paint (holes already filled from the nearest surface, so an
empty prompt can "continue what is there"), the depth, and a mask that is 1 on holes and
``strength`` on the band (dilated a few pixels so the model blends into the known paint, after
Paint3D). Back-projection (``texgen.project.sample_view``) is allowed to write band and hole
texels only, and band texels take the new paint with the band's falloff, so nothing outside the
band changes and the band has no hard outer edge.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from .camera import Camera, look_at
from .diffusion.base import SamplerSettings, ViewBatch
from .export import view_picture
from .fill import pad_texture
from .mesh import Mesh
from .progress import CancelToken, ProgressCallback, ProgressEvent, Timer
from .project import TextureState, dilate, sample_views
from .render import Renderer
from .seam_blend import SeamBand
from .texels import TexelMap

if TYPE_CHECKING:
    from .seams_repair import SeamSettings

CELL = 0.2  # voxel size (unit frame) for finding clusters of repair texels
CLUSTER_RADIUS = 0.35  # texels this close to a view's centre belong to its cluster
FRAME_MIN, FRAME_MAX = 0.12, 0.6  # radius a view frames around its centre (unit frame)
VIEW_FOV_DEG = 40.0
MASK_DILATE_PX = 3
BACKGROUND_GREY = 0.5


def plan_cameras(texels: TexelMap, score: np.ndarray, count: int, size: int) -> list[Camera]:
    """Up to ``count`` cameras, each looking at the cluster of texels with the most ``score``.

    Greedy: the coarse voxel with the highest summed score gives a centre; the texels within
    ``CLUSTER_RADIUS`` of it form the cluster (weighted mean position and normal, framed by
    their spread) and are then left out of the next rounds.
    score : (M,) float >= 0, how much each texel needs repainting
    """
    position = texels.position.numpy().astype(np.float64)
    normal = texels.normal.numpy().astype(np.float64)
    score = score.astype(np.float64).copy()
    _, cell = np.unique(np.floor(position / CELL).astype(np.int64), axis=0, return_inverse=True)
    cell = cell.reshape(-1)
    cameras = []
    for _ in range(count):
        sums = np.bincount(cell, weights=score)
        if sums.size == 0 or sums.max() <= 0:
            break
        seed = cell == sums.argmax()
        centre = np.average(position[seed], axis=0, weights=score[seed])
        near = np.linalg.norm(position - centre, axis=1) < CLUSTER_RADIUS
        weight = score * near
        centre = np.average(position, axis=0, weights=weight)
        spread = np.sqrt(np.average(((position - centre) ** 2).sum(axis=1), weights=weight))
        direction = (normal * weight[:, None]).sum(axis=0)
        if np.linalg.norm(direction) < 1e-6 * weight.sum():  # normals cancel out: look from outside
            direction = centre if np.linalg.norm(centre) > 1e-6 else np.array([0.0, 0.0, 1.0])
        cameras.append(_camera(centre, direction / np.linalg.norm(direction),
                               float(np.clip(2.0 * spread, FRAME_MIN, FRAME_MAX)), size))
        score[near] = 0.0
    return cameras


def _camera(centre: np.ndarray, direction: np.ndarray, frame: float, size: int) -> Camera:
    """A perspective camera on ``direction`` from ``centre``, framing a sphere of radius ``frame``."""
    yfov = math.radians(VIEW_FOV_DEG)
    distance = frame / math.sin(yfov / 2.0)
    eye = centre + direction * distance
    azimuth = math.degrees(math.atan2(direction[0], direction[2]))
    elevation = math.degrees(math.asin(float(np.clip(direction[1], -1.0, 1.0))))
    return Camera(look_at(eye, centre), size, size, yfov=yfov, znear=0.01, zfar=distance + 2.5,
                  azimuth=azimuth, elevation=elevation)


def repaint(mesh: Mesh, texels: TexelMap, color: torch.Tensor, band: SeamBand, holes: np.ndarray,
            settings: SeamSettings, generator, falloff: np.ndarray, progress: ProgressCallback,
            cancel: CancelToken, timer: Timer) -> tuple[torch.Tensor, list[dict], list[tuple[str, np.ndarray]]]:
    """Inpaint the band and the holes from views centred on them.

    color : (M, 3) float current colours (holes already filled)
    falloff : (M,) float band strength (1 near the seams, 0 at the band's edge)
    returns : new colours (M, 3) (changed only on band and hole texels), a report entry per
        view and preview tiles
    """
    region = band.mask | holes
    cameras = plan_cameras(texels, np.where(holes, 1.0, falloff) * region, settings.views, settings.view_size)
    if not cameras:
        return color, [], []
    progress(ProgressEvent("render", views=len(cameras), message=f"rendering {len(cameras)} repair views"))
    paint = pad_texture(texels, texels.to_image(color.clamp(0, 1)), 4)
    flags = np.stack([texels.to_image((band.mask & ~holes).astype(np.float32)),
                      texels.to_image(holes.astype(np.float32))], axis=-1)
    with Renderer(mesh) as renderer:
        buffers = renderer.render(cameras)
        rendered, flagged = renderer.render_textures(cameras, [paint, flags], smooth=[True, False])
    foreground = buffers.mask[:, None]
    image = torch.where(foreground, rendered, torch.full_like(rendered, BACKGROUND_GREY))
    mask = torch.maximum(flagged[:, 0] * settings.strength, flagged[:, 1]) * buffers.mask
    mask = dilate(mask, MASK_DILATE_PX) * buffers.mask
    words = [f", {camera.direction_word}" if settings.prompt else "" for camera in cameras]
    batch = ViewBatch([settings.prompt + word for word in words], buffers.control_depth(),
                      settings.negative_prompt, cameras, image, mask, list(range(len(cameras))))
    sampler = SamplerSettings(steps=settings.steps, guidance=settings.guidance,
                              controlnet_scale=settings.controlnet_scale, seed=settings.seed)
    timer.lap("render")

    def step(event: ProgressEvent) -> None:
        progress(dataclasses.replace(event, views=len(cameras)))

    generated = generator.inpaint(batch, sampler, step, cancel)
    timer.lap("diffusion")

    progress(ProgressEvent("project", views=len(cameras), message="projecting back into the band and holes"))
    state = TextureState(texels)
    allow = torch.from_numpy(region)
    records = []
    for index, (camera, samples) in enumerate(zip(cameras, sample_views(texels, cameras, buffers, generated))):
        state.accumulate(samples, index, allow)
        records.append({"azimuth": camera.azimuth, "elevation": camera.elevation,
                        "texels": int((samples.visible & allow).sum())})
    alpha = torch.from_numpy(np.where(holes, 1.0, falloff).astype(np.float32)) * state.painted
    color = color + alpha[:, None] * (state.color - color)
    timer.lap("project")

    tiles = []
    for number in range(len(cameras)):
        tiles += [(f"view {number + 1} input", view_picture(image[number])),
                  (f"view {number + 1} mask", view_picture(mask[number])),
                  (f"view {number + 1} inpainted", view_picture(generated[number]))]
    return color, records, tiles


__all__ = ["plan_cameras", "repaint"]
