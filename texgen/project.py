"""Back-projection: view images into texture space, weighted, with visibility tests.

For every valid texel (see :class:`texgen.texels.TexelMap`) and a view, the texel centre is
projected into the image and sampled with ``grid_sample``. It counts only when

* it lands inside the image, on the foreground, away from silhouettes and depth edges
  (erosion, after Hunyuan3D-2's depth-edge masking),
* its depth matches the rendered depth within a tolerance (occlusion test),
* the surface faces the camera within the cutoff angle.

Its weight is cos(normal, view)^k (after SyncMVD, Meta TextureGen). :class:`TextureState`
accumulates views and keeps the per-texel record the paint loop's trimap needs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .camera import Camera
from .render import ViewBuffers
from .texels import TexelMap

LOOKUP_SPLIT = 65_536  # _lookup splits larger sets of points over the CPU threads
START_WEIGHT = 1e-3  # TextureState.start_from's weight: painted, and next to nothing in a view's weighted mean


@dataclass(frozen=True)
class ProjectionSettings:
    """cos_power : k in the cos^k view weight
    cutoff_deg : texels seen more obliquely than this are ignored
    depth_tolerance : occlusion test slack in unit-frame units (the mesh fits the unit sphere), to
        which each texel adds one pixel's depth change at its slope (pixel size x tan(angle)); 0.005
        rejects surfaces hidden 0.009 behind another (the duck's eyes sunk into its head)
    edge_erode_px : pixels removed around silhouettes, depth discontinuities and creases
    depth_edge : a depth jump larger than this (unit frame) between neighbouring pixels is an edge
    crease_deg : neighbouring pixels whose normals differ more than this are a crease, where a
        pixel mixes two surfaces (the seam of a seed in a fruit, the corner of a box)
    """

    cos_power: float = 4.0
    cutoff_deg: float = 75.0
    depth_tolerance: float = 0.005
    edge_erode_px: int = 2
    depth_edge: float = 0.04
    crease_deg: float = 45.0

    def __post_init__(self) -> None:
        if not 0 < self.cutoff_deg <= 90:
            raise ValueError(f"cutoff_deg must lie in (0, 90] degrees, got {self.cutoff_deg}")
        if self.cos_power < 0 or self.depth_tolerance < 0 or self.edge_erode_px < 0 or self.depth_edge <= 0:
            raise ValueError("projection settings out of range (cos_power, depth_tolerance and edge_erode_px must "
                             f"be >= 0, depth_edge > 0): {self}")


@dataclass
class ViewSamples:
    """What one view sees: the texels it sees (K of the map's M) and its samples there.

    count : M, the number of valid texels of the map
    texel : (K,) int64 ascending indices of the texels the view sees
    color : (K, C) float32 sampled colour (C = 0 when only visibility was asked for); the samplers give
        the transpose of a contiguous (C, K), as grid_sample makes it
    weight : (K,) float32 blending weight, > 0
    cos : (K,) float32 cos(normal, direction to camera)
    """

    count: int
    texel: torch.Tensor
    color: torch.Tensor
    weight: torch.Tensor
    cos: torch.Tensor

    @property
    def visible(self) -> torch.Tensor:
        """(M,) bool texels the view sees."""
        return self.scatter(torch.ones_like(self.weight, dtype=torch.bool), False)

    def scatter(self, values: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
        """(M, ...) per-texel ``values`` (K, ...), ``fill`` at texels the view does not see."""
        dense = values.new_full((self.count,) + tuple(values.shape[1:]), fill)
        return dense.index_put_((self.texel,), values)


def unreliable_pixels(depth: torch.Tensor, normals: Optional[torch.Tensor],
                      settings: ProjectionSettings) -> torch.Tensor:
    """(H, W) bool: background, silhouettes, depth discontinuities and creases, dilated by
    ``edge_erode_px`` (after Hunyuan3D-2's masking of depth edges).

    depth : (H, W) linear depth, 0 on the background
    normals : (3, H, W) unit normals, or None to skip the crease test
    """
    bad = depth <= 0
    crease_cos = math.cos(math.radians(settings.crease_deg))
    for axis in (0, 1):  # each pair of neighbours once, marking both pixels
        length = depth.shape[axis] - 1
        edge = (depth.narrow(axis, 1, length) - depth.narrow(axis, 0, length)).abs_() > settings.depth_edge
        if normals is not None:
            after, before = normals.narrow(axis + 1, 1, length), normals.narrow(axis + 1, 0, length)
            cosine = (after[0] * before[0]).addcmul_(after[1], before[1]).addcmul_(after[2], before[2])
            edge |= cosine < crease_cos
        bad.narrow(axis, 0, length).logical_or_(edge)
        bad.narrow(axis, 1, length).logical_or_(edge)
    return dilate(bad.to(torch.uint8)[None], settings.edge_erode_px)[0] > 0


def where_true(mask: torch.Tensor) -> torch.Tensor:
    """(K,) int64 ascending indices where ``mask`` (M,) bool is true: numpy's search on the CPU (4x
    faster than torch's there), torch's elsewhere."""
    if mask.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(mask.numpy()))
    return torch.nonzero(mask).squeeze(1)


def dilate(values: torch.Tensor, radius: int) -> torch.Tensor:
    """The maximum over each (2 radius + 1)^2 square around every pixel.

    On the CPU OpenCV's dilation does it (15x faster than torch's max pooling there); on a GPU,
    torch's max pooling as two 1D passes.
    values : (B, H, W) float32 or uint8
    returns : (B, H, W) of the same type
    """
    if radius <= 0:
        return values
    if values.device.type != "cpu":
        return _dilate_by_pooling(values.float(), radius).to(values.dtype)
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    return torch.from_numpy(np.stack([cv2.dilate(plane, kernel) for plane in values.numpy()]))


def _dilate_by_pooling(values: torch.Tensor, radius: int) -> torch.Tensor:
    values = F.max_pool2d(values[:, None], (1, 2 * radius + 1), stride=1, padding=(0, radius))
    return F.max_pool2d(values, (2 * radius + 1, 1), stride=1, padding=(radius, 0))[:, 0]


def sample_view(texels: TexelMap, camera: Camera, depth: torch.Tensor, image: Optional[torch.Tensor],
                settings: ProjectionSettings = ProjectionSettings(),
                normals: Optional[torch.Tensor] = None) -> ViewSamples:
    """Sample one view at every texel.

    depth : (H, W) the view's rendered depth
    image : (C, H, W) float image, or None to compute visibility and weights only
    normals : (3, H, W) the view's rendered normals, for the crease test
    """
    cutoff = math.cos(math.radians(settings.cutoff_deg))
    facing_cos = _facing_cos(texels, camera)
    # only texels that face the camera can be visible: the rest of the work runs on those alone
    candidates = where_true(facing_cos > cutoff)
    cos = facing_cos.index_select(0, candidates)
    grid, texel_depth = camera.sample_grid(texels.position.index_select(0, candidates))
    # unreliable pixels read as background, and so do texels landing outside the image (zero padding)
    seen_depth = _lookup(depth.masked_fill(unreliable_pixels(depth, normals, settings), 0)[None], "nearest", grid)[0]
    # the depth read at the nearest pixel may be up to a pixel's depth change off: pixel size x tan(angle)
    pixel = torch.full_like(texel_depth, 1 / camera.focal) if camera.orthographic else texel_depth / camera.focal
    tangent = (1 - cos.square()).clamp_min_(0).sqrt_().div_(cos)
    tolerance = torch.addcmul(pixel.new_tensor(settings.depth_tolerance), pixel, tangent)
    weight = cos.square().square_() if settings.cos_power == 4 else cos.pow(settings.cos_power)  # 4: 3x faster
    visible = where_true(((texel_depth - seen_depth).abs_() < tolerance) & (weight > 0))
    if image is None:
        color = weight.new_zeros((len(visible), 0))
    else:
        color = _lookup(image.float(), "bilinear", grid.index_select(0, visible)).T
    return ViewSamples(texels.count, candidates.index_select(0, visible), color, weight.index_select(0, visible),
                       cos.index_select(0, visible))


VIEW_THREADS = 2  # sample_views works on this many views at once
_VIEW_POOL = ThreadPoolExecutor(max_workers=VIEW_THREADS, thread_name_prefix="texgen-views")


def sample_views(texels: TexelMap, cameras: Sequence[Camera], buffers: ViewBuffers,
                 images: Optional[Sequence[torch.Tensor]] = None,
                 settings: ProjectionSettings = ProjectionSettings()) -> Iterator[ViewSamples]:
    """:func:`sample_view` of every camera, in order, ``VIEW_THREADS`` views at a time.

    Much of a view's work leaves a core idle (OpenCV's dilation, the Python between
    torch calls): two views side by side keep both cores of a small machine busy (1.15x faster
    on 2 cores). The views come out in order, the same samples as :func:`sample_view`'s.
    buffers : the cameras' :meth:`texgen.render.Renderer.render`; images : (C, H, W) each, or None
        for visibility and weights alone
    """
    def sample(index: int) -> ViewSamples:
        image = None if images is None else images[index]
        return sample_view(texels, cameras[index], buffers.depth[index], image, settings, buffers.normals[index])

    pending = [_VIEW_POOL.submit(sample, index) for index in range(min(VIEW_THREADS, len(cameras)))]
    for index in range(len(cameras)):
        samples = pending[index].result()
        if index + VIEW_THREADS < len(cameras):  # at most VIEW_THREADS views' samples wait at once
            pending.append(_VIEW_POOL.submit(sample, index + VIEW_THREADS))
        yield samples


def sample_colour(texels: TexelMap, camera: Camera, visibility: ViewSamples, image: torch.Tensor) -> ViewSamples:
    """``visibility`` (:func:`sample_view` of this camera without an image) with the colours of ``image``
    (C, H, W) at the texels it sees: the visibility tests are not run again. The paint loop tests
    a view before it is generated and projects the generated image afterwards.
    """
    grid, _ = camera.sample_grid(texels.position.index_select(0, visibility.texel))
    color = _lookup(image.float(), "bilinear", grid).T
    return ViewSamples(visibility.count, visibility.texel, color, visibility.weight, visibility.cos)


def _lookup(values: torch.Tensor, mode: str, grid: torch.Tensor) -> torch.Tensor:
    """(C, K) ``values`` (C, H, W) sampled at ``grid`` (K, 2) (:meth:`Camera.sample_grid`), zero
    outside the image.

    On the CPU, grid_sample runs one thread per batch item: the points are split into a batch of
    one part per thread (the image is shared, not copied), which gives the same values 1.4x faster
    on 2 cores (``bench/bench_geometry.py`` prints the plain and the split pass).
    """
    count = len(grid)
    parts = torch.get_num_threads() if grid.device.type == "cpu" and count >= LOOKUP_SPLIT else 1
    per_part = -(-count // parts)
    if per_part * parts != count:
        grid = torch.cat([grid, grid.new_zeros(per_part * parts - count, 2)])
    sampled = F.grid_sample(values[None].expand(parts, -1, -1, -1), grid.view(parts, 1, per_part, 2), mode=mode,
                            padding_mode="zeros", align_corners=False)  # (parts, C, 1, per_part)
    return sampled.transpose(0, 1).reshape(len(values), -1)[:, :count]


def _facing_cos(texels: TexelMap, camera: Camera) -> torch.Tensor:
    """(M,) cos between each texel's normal and its direction to the camera.

    n . (eye - p) / |eye - p|: the numerator is one value per flat face (n . eye less the face's
    offset n . p), gathered per texel, and |eye - p|^2 is expanded into |p|^2 and one matrix-vector
    product, so that no (M, 3) temporary is made.
    """
    normals = texels.face_normals
    if camera.orthographic:
        toward = torch.as_tensor(-camera.forward, dtype=normals.dtype, device=normals.device)
        return (normals @ toward).index_select(0, texels.face)
    eye = torch.as_tensor(camera.position, dtype=texels.position.dtype, device=texels.position.device)
    facing = torch.addmv(texels.face_offsets, normals, eye, beta=-1).index_select(0, texels.face)
    distance_sq = torch.addmv(texels.position_sq, texels.position, eye, alpha=-2).add_(eye.dot(eye))
    return facing.mul_(distance_sq.clamp_min_(1e-20).rsqrt_())


class TextureState:
    """The texture being painted, per valid texel, and its record of the views so far.

    color : (M, C) float32 current colour (weighted mean of what was projected)
    weight : (M,) float32 sum of blending weights
    best_cos : (M,) float32 the most frontal cos any view saw the texel with (0 = never seen)
    best_view : (M,) int64 index of that view, -1 for never
    """

    def __init__(self, texels: TexelMap, channels: int = 3):
        self.texels = texels
        self.color = torch.zeros((texels.count, channels))
        self.weight = torch.zeros(texels.count)
        self.best_cos = torch.zeros(texels.count)
        self.best_view = torch.full((texels.count,), -1, dtype=torch.int64)

    @property
    def painted(self) -> torch.Tensor:
        """(M,) bool texels that have a colour: some view painted them, or :meth:`start_from` gave one."""
        return self.weight > 0

    @property
    def seen(self) -> torch.Tensor:
        """(M,) bool texels that some view has painted."""
        return self.best_view >= 0

    def start_from(self, color: torch.Tensor) -> None:
        """Give every texel a starting colour (M, C) that no view has painted: views refine it (their
        trimaps see it as painted, with best_cos 0) and replace it; texels no view sees keep it."""
        self.color.copy_(color)
        self.weight.fill_(START_WEIGHT)
        self.best_cos.zero_()
        self.best_view.fill_(-1)

    def accumulate(self, samples: ViewSamples, view: int, allow: Optional[torch.Tensor] = None) -> None:
        """Blend a view into the texture with its weights (a weighted running mean).

        allow : (M,) bool, the texels this view may change; others are left exactly as they are
        """
        self._blend(samples, view, allow, None)

    def replace(self, samples: ViewSamples, view: int, allow: torch.Tensor, strength: float = 1.0) -> None:
        """Overwrite the allowed texels with the view's colour, mixed in with ``strength`` in [0, 1].

        The paint loop uses this for generated and refined regions: a view that generated new
        content must not be averaged with a different, earlier invention. Unpainted texels take
        the new colour whatever the strength.
        """
        self._blend(samples, view, allow, strength)

    def _blend(self, samples: ViewSamples, view: int, allow: Optional[torch.Tensor], strength: Optional[float]) -> None:
        """Move the allowed texels the view sees towards its colour: by ``strength`` (1 where unpainted),
        or by the view's share of the weight when ``strength`` is None."""
        # only the changed texels are touched: the others keep their values bit for bit, whatever the view holds
        changed, added, color, cos = samples.texel, samples.weight, samples.color, samples.cos
        if allow is not None:
            keep = where_true(allow.index_select(0, changed))
            changed, added, cos = (x.index_select(0, keep) for x in (changed, added, cos))
            # the rows of a transposed (C, K) are taken as columns of it: 4x faster than rows of the strided view
            color = color.T.index_select(1, keep).T
        # a view's texels are distinct: each is read once and written back once (index_copy_, no masks)
        before = self.weight.index_select(0, changed)
        total = before + added
        if strength is None:
            fraction = added / total
        else:
            fraction = torch.where(before > 0, strength, 1.0)
        self.color.index_copy_(0, changed, torch.lerp(self.color.index_select(0, changed), color, fraction[:, None]))
        self.weight.index_copy_(0, changed, total)
        best_cos = self.best_cos.index_select(0, changed)
        better = cos > best_cos
        self.best_cos.index_copy_(0, changed, torch.maximum(cos, best_cos))
        self.best_view.index_copy_(0, changed, torch.where(better, view, self.best_view.index_select(0, changed)))

    def image(self, background: float = 0.0):
        """(N, N, C) float32 numpy texture; unpainted and invalid texels get ``background``."""
        color = torch.where(self.painted[:, None], self.color, torch.full_like(self.color, background))
        return self.texels.to_image(color, fill=background)
