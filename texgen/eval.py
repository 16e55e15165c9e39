"""Measuring quality without a model: the oracle generator and the round trip.

The oracle "generates" a view by rendering a reference textured mesh from the requested camera.
Baking those renders back must reproduce the reference texture; the round-trip PSNR, the
coverage and the seam ratio are texgen's quality numbers (shared REFERENCE.md, section 3).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import torch

from .camera import default_views
from .diffusion.base import SamplerSettings, ViewBatch
from .errors import ModelError
from .fill import fill_unseen, pad_islands, pad_texture
from .mesh import Mesh, load_mesh
from .progress import CancelToken, ProgressCallback, ProgressEvent, Timer
from .project import ProjectionSettings, TextureState, sample_views
from .render import Renderer, texture_bytes
from .seam_blend import band_for_size, smooth_seams
from .seams import edge_pairs, seam_stats
from .texels import TexelMap, build_in_background


class OracleGenerator:
    """A generator that returns renders of a reference textured mesh (unlit, texture only).

    perturb : add a per-view colour gain and offset and a 1-3 px shift, deterministic in the
        seed and the view, to exercise blending and seam handling
    """

    def __init__(self, reference: Mesh, perturb: bool = False, renderer: Optional[Renderer] = None):
        if reference.texture is None:
            raise ModelError(f"oracle: the reference mesh {reference.name!r} has no texture to render")
        self.reference = reference
        self.perturb = perturb
        self.name = f"oracle:{reference.name}" + (":perturbed" if perturb else "")
        self._renderer = renderer

    @classmethod
    def from_spec(cls, spec: str) -> "OracleGenerator":
        """``oracle:PATH`` or ``oracle:PATH:perturbed``."""
        body = spec.removeprefix("oracle:")
        perturb = body.endswith(":perturbed")
        path = Path(body.removesuffix(":perturbed"))
        if not path.is_file():
            raise ModelError(f"oracle: reference mesh not found: {path}")
        return cls(load_mesh(path), perturb=perturb)

    @cached_property
    def padded_texture(self) -> np.ndarray:
        """The reference texture with its islands padded, so filtered lookups near island
        borders do not pick up the unpainted background of the image."""
        texture = self.reference.texture
        valid = TexelMap.build(self.reference, texture.shape[0]).valid
        if texture.shape[0] != texture.shape[1]:
            valid = cv2.resize(valid.astype(np.uint8), texture.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0
        return pad_islands(texture, valid, max(texture.shape) // 32)

    def render(self, cameras: list, seed: int = 0) -> torch.Tensor:
        """(B, 3, H, W) renders of the reference texture, perturbed if asked."""
        if self._renderer is None:
            self._renderer = Renderer(self.reference)
        images = self._renderer.render_texture(cameras, self.padded_texture)
        if not self.perturb:
            return images
        out = []
        for camera, image in zip(cameras, images):
            key = int(abs(hash((round(camera.azimuth, 3), round(camera.elevation, 3)))) % (2**31))
            rng = np.random.default_rng([seed, key])
            gain = torch.from_numpy(rng.uniform(0.92, 1.08, 3).astype(np.float32))[:, None, None]
            offset = torch.from_numpy(rng.uniform(-0.03, 0.03, 3).astype(np.float32))[:, None, None]
            shift = tuple(int(s) for s in rng.integers(1, 4, 2) * rng.choice([-1, 1], 2))
            out.append((torch.roll(image, shift, dims=(1, 2)) * gain + offset).clamp(0, 1))
        return torch.stack(out)

    def _run(self, batch: ViewBatch, sampler: SamplerSettings, progress: Optional[ProgressCallback],
             cancel: Optional[CancelToken]) -> torch.Tensor:
        if batch.cameras is None:
            raise ModelError("the oracle generator needs the cameras of the views")
        if cancel is not None:
            cancel.raise_if_cancelled()
        images = self.render(batch.cameras, sampler.seed)
        if progress is not None:
            progress(ProgressEvent("generate", step=sampler.steps, steps=sampler.steps))
        return images

    def generate(self, batch: ViewBatch, sampler: SamplerSettings, progress: Optional[ProgressCallback] = None,
                 cancel: Optional[CancelToken] = None) -> torch.Tensor:
        return self._run(batch, sampler, progress, cancel)

    def inpaint(self, batch: ViewBatch, sampler: SamplerSettings, progress: Optional[ProgressCallback] = None,
                cancel: Optional[CancelToken] = None) -> torch.Tensor:
        return self._run(batch, sampler, progress, cancel)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two (M, C) float arrays in [0, 1]."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def resample_reference(texture: np.ndarray, size: int) -> np.ndarray:
    """(size, size, 3) float32 reference texture in [0, 1] at the bake resolution."""
    interpolation = cv2.INTER_AREA if texture.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(texture, (size, size), interpolation=interpolation).astype(np.float32) / 255.0


def roundtrip(mesh: Mesh, views: int = 8, view_size: int = 1024, texture_size: int = 1024,
              perturb: bool = False, seed: int = 0, pad: int = 8,
              projection: ProjectionSettings = ProjectionSettings()) -> tuple[dict, dict[str, np.ndarray]]:
    """Render the mesh's own texture from ``views`` cameras and bake it back.

    returns : the metrics (JSON-ready) and the images ``baked`` (before padding), ``reference``
        and ``filled`` (padded), each (N, N, 3) float32
    """
    if mesh.texture is None:
        raise ModelError(f"{mesh.name}: the round trip needs a mesh with its own texture")
    timer = Timer()
    texels_ready = build_in_background(mesh, texture_size)  # while the views render
    cameras = default_views(views, view_size)
    renderer = Renderer(mesh)
    buffers = renderer.render(cameras)
    timer.lap("render")
    oracle = OracleGenerator(mesh, perturb=perturb, renderer=renderer)
    images = oracle.render(cameras, seed)
    timer.lap("oracle")
    texels = texels_ready.result()
    timer.lap("rasterise_uv")  # what was left of it once the views were rendered
    state = TextureState(texels)
    for index, samples in enumerate(sample_views(texels, cameras, buffers, images, projection)):
        state.accumulate(samples, index)
    timer.lap("project")
    texels.prepare_padding(pad)
    filled = fill_unseen(texels, state.color, state.painted)
    pairs = edge_pairs(mesh)  # once, for the smoothing and both seam ratios
    filled = smooth_seams(mesh, texels, filled, *band_for_size(texels.size), confidence=state.painted.float(),
                          pairs=pairs)
    texture = pad_texture(texels, texels.to_image(filled), pad)
    timer.lap("fill")
    renderer.close()

    reference = resample_reference(mesh.texture, texture_size)
    measured = (state.painted & ~texels.overlap).numpy()
    painted = state.painted.numpy()
    baked = state.image()
    texture8 = texture_bytes(texture)
    reference_seams = seam_stats(mesh, reference, pairs=pairs)
    baked_seams = seam_stats(mesh, texture8, pairs=pairs)
    timer.lap("metrics")
    metrics = {
        "mesh": mesh.name,
        "views": views, "view_size": view_size, "texture_size": texture_size, "perturb": perturb,
        # None when every texel is shared by several UV triangles (nothing unambiguous to measure)
        "psnr_db": psnr(state.color.numpy()[measured], texels.gather(reference)[measured]) if measured.any() else None,
        "coverage_views": float(painted.mean()),
        "coverage": float(np.isfinite(filled.numpy()).all(axis=1).mean()),
        "unseen_fraction": float(1.0 - painted.mean()),
        "overlap_fraction": float(texels.overlap.float().mean()),
        "valid_texels": texels.count,
        "seam_ratio": baked_seams.seam_ratio,
        "seam_ratio_reference": reference_seams.seam_ratio,
        "seam_delta_e": baked_seams.seam_delta_e,
        "seam_delta_e_reference": reference_seams.seam_delta_e,
        "timings": timer.timings,
    }
    return metrics, {"baked": baked, "reference": reference, "filled": texture}
