"""The UV-space rasteriser: which face, where in 3D and facing where, for every texel.

Texel (row, col) of an N x N texture has its centre at u = (col + 0.5) / N, v = 1 - (row + 0.5) / N
(image row 0 is the top of the texture, v = 1). A texel is *valid* when its centre lies inside a
UV triangle of a non-degenerate face. Texels inside several UV triangles (mirrored or overlapping
UVs) are *overlap* texels: their colour is ambiguous.

OpenGL draws the UV layout (:func:`texgen.render.rasterise_uv`, on the GPU where there is one);
the texels it may have placed wrongly at its sub-pixel precision are then settled with exact
barycentric tests. The valid texels are those of an exact rasteriser (:func:`rasterise_triangles`,
which tests every texel of every triangle's box and serves smaller jobs). Overlaps are judged
from the top and the bottom triangle GL drew (:func:`_layered_overlap`). Where most triangles
are slivers on the grid (a dense scan at a modest texture size), settling would test nearly
every texel: the exact rasteriser then does the whole job (:func:`_exact_coverage`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np
import torch

from .mesh import Mesh, sorted_unique
from .render import rasterise_uv

EDGE_EPS = 1e-7  # barycentric slack: a texel centre on an edge is inside
CHUNK_CANDIDATES = 4_000_000  # rasterise_triangles tests at most this many texel candidates at once
SETTLE_REACH = 2  # doubtful texels are tested against the triangles GL drew up to this many texels away
SLIVER = 2.0  # triangles less high than this (in texels) are rasterised exactly (rasterise_triangles) too
INTERIOR = 1e-4  # a texel this far inside a triangle (in barycentrics) is not on its edge
DOUBT = 1e-5  # GL's coverage of a texel closer than this to an edge (in barycentrics) is checked in float64
TEXEL_CHUNK = 65_536  # per-texel arithmetic runs on this many texels at a time (see _chunks)
EXACT_COST, SLIVER_COST = 3.0, 60.0  # _exact_is_cheaper's weights of a box texel and a sliver texel (a grid texel: 1)


@dataclass
class TexelMap:
    """Per-texel geometry of one mesh at one texture size; build once, reuse for every view.

    size : N, the texture is N x N
    index : (M,) int64 flat index (row * N + col) of each valid texel
    face : (M,) int64 face covering the texel
    bary : (M, 3) float32 barycentric coordinates in that face
    position : (M, 3) float32 texel centre in the unit frame
    overlap : (M,) bool texel covered by more than one UV triangle
    island : (M,) int32 UV island of the face
    face_normals : (F, 3) float32 unit geometric normal of every face of the mesh
    face_offsets : (F,) float32 n . p of every face's plane (unit frame): a flat face's texels share
        it, so facing tests need one value per face (see ``texgen.project``)
    """

    size: int
    index: torch.Tensor
    face: torch.Tensor
    bary: torch.Tensor
    position: torch.Tensor
    overlap: torch.Tensor
    island: torch.Tensor
    face_normals: torch.Tensor
    face_offsets: torch.Tensor
    _padding: dict[int, "Future[tuple[np.ndarray, np.ndarray]]"] = field(default_factory=dict, init=False,
                                                                          repr=False, compare=False)

    @classmethod
    def build(cls, mesh: Mesh, size: int) -> "TexelMap":
        """Rasterise ``mesh``'s UV triangles into an N x N grid.

        OpenGL draws the triangles (:func:`texgen.render.rasterise_uv`); the texels it may have
        put on the wrong side of an edge, at the sub-pixel precision of its corners, are then
        settled with exact barycentric tests (:func:`_coverage`). Where that would cost more than
        testing every texel of every triangle's box, that is done instead (:func:`_exact_coverage`).
        """
        mesh.require_uvs()
        if size < 1:
            raise ValueError(f"texture size must be positive, got {size}")
        faces = np.flatnonzero(mesh.face_ok)
        corners = np.take(mesh.corner_uvs(), faces, axis=0)  # take: 3x faster than fancy indexing
        # texel-centre coordinates: x = u * N - 0.5, y = (1 - v) * N - 0.5
        tri = np.stack([corners[..., 0] * size - 0.5, (1.0 - corners[..., 1]) * size - 0.5], axis=-1)
        tri, faces = _wrap_copies(tri, faces, size)
        edges = _edge_functions(tri)
        drawn = np.flatnonzero(np.isfinite(edges).all(axis=1))  # zero-area UV triangles cover no texel centre
        tri, faces, edges = tri[drawn], faces[drawn], edges[drawn]
        sliver = _altitude(edges) < SLIVER  # less than SLIVER texels high: GL may draw only some of their texels
        if _exact_is_cheaper(tri, sliver, size):
            texel, copy, bary, overlap = _exact_coverage(mesh, tri, edges, faces, size)
        else:
            top, bottom = rasterise_uv(tri, faces, size)
            texel, copy, bary, overlap = _coverage(mesh, tri, edges, faces, sliver, top, bottom)
        face = faces[copy]
        # position = p2 + b0 (p0 - p2) + b1 (p1 - p2) from per-face rows
        p = np.take(mesh.unit_positions, mesh.faces, axis=0)
        rows = np.concatenate([p[:, 2], p[:, 0] - p[:, 2], p[:, 1] - p[:, 2]], axis=1, dtype=np.float32)
        rows = torch.from_numpy(rows)
        face_index = torch.from_numpy(face)
        position = torch.empty((len(face), 3))
        for part in _chunks(len(face)):
            corners = rows.index_select(0, face_index[part])
            torch.addcmul(corners[:, :3], corners[:, 3:6], bary[part, :1], out=position[part])
            position[part].addcmul_(corners[:, 6:], bary[part, 1:2])
        island = np.take(mesh.face_islands.astype(np.int32), face)
        centres = (p[:, 0] + p[:, 1] + p[:, 2]) / 3  # 3x faster than p.mean(axis=1)
        offsets = np.einsum("fk,fk->f", mesh.face_normals.astype(np.float64), centres).astype(np.float32)
        return cls(size, torch.from_numpy(texel), torch.from_numpy(face), bary, position, torch.from_numpy(overlap),
                   torch.from_numpy(island), torch.from_numpy(mesh.face_normals), torch.from_numpy(offsets))

    @property
    def count(self) -> int:
        return int(self.index.numel())

    @cached_property
    def valid(self) -> np.ndarray:
        """(N, N) bool mask of valid texels."""
        mask = np.zeros(self.size * self.size, dtype=bool)
        mask[self.index.numpy()] = True
        return mask.reshape(self.size, self.size)

    @cached_property
    def normal(self) -> torch.Tensor:
        """(M, 3) float32 unit geometric normal of each texel's face."""
        return self.face_normals.index_select(0, self.face)

    @cached_property
    def position_sq(self) -> torch.Tensor:
        """(M,) |p|^2 of each texel: facing tests need no (M, 3) temporaries."""
        return self.position.square().sum(dim=1)

    def number_of(self, flat: np.ndarray) -> np.ndarray:
        """(K,) int64 the valid texel (its index into the per-texel arrays) at each flat index (K,)
        (row * N + col), -1 where invalid or outside the N x N texture. A few lookups binary-search
        ``index``; many (more than one per 16 texels) read a table of the texture, made for them."""
        flat = np.asarray(flat, dtype=np.int64)
        if len(flat) * 16 <= self.size * self.size:
            return _positions(self.index.numpy(), flat)
        table = self._number_table
        inside = (flat >= 0) & (flat < len(table))
        return np.where(inside, np.take(table, np.where(inside, flat, 0)), -1).astype(np.int64)

    @cached_property
    def _number_table(self) -> np.ndarray:
        """(N * N,) int32 the valid texel at each flat index, -1 at invalid ones: made once, for many lookups."""
        table = np.full(self.size * self.size, -1, dtype=np.int32)
        table[self.index.numpy()] = np.arange(self.count, dtype=np.int32)
        return table

    def padding(self, margin: int) -> tuple[np.ndarray, np.ndarray]:
        """:func:`padding_sources` of the valid texels, made once per margin (or awaited, when
        :meth:`prepare_padding` started it)."""
        with _PADDING_LOCK:
            job = self._padding.get(margin)
        if job is None:
            job = Future()
            job.set_result(padding_sources(self.valid, margin))
            with _PADDING_LOCK:
                job = self._padding.setdefault(margin, job)
        return job.result()

    def prepare_padding(self, margin: int) -> None:
        """Start :meth:`padding` on texgen's background thread and return at once: callers fill
        the unseen texels meanwhile, on one core, while OpenCV's distance transform runs on another."""
        with _PADDING_LOCK:
            if margin not in self._padding:
                self._padding[margin] = _BACKGROUND.submit(lambda: padding_sources(self.valid, margin))

    def to_image(self, values: torch.Tensor | np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Scatter per-texel ``values`` (M,) or (M, C) into an (N, N) or (N, N, C) float32 image."""
        if not isinstance(values, torch.Tensor):  # a copy, so that read-only arrays are accepted too
            values = torch.tensor(np.asarray(values), dtype=torch.float32)
        values = values.float()
        image = torch.full((self.size * self.size,) + tuple(values.shape[1:]), fill)
        image.index_copy_(0, self.index, values)  # 3x faster than numpy's fancy assignment
        return image.numpy().reshape((self.size, self.size) + tuple(values.shape[1:]))

    def gather(self, image: np.ndarray) -> np.ndarray:
        """Per-texel values (M, ...) read from an (N, N, ...) image."""
        return np.take(image.reshape((self.size * self.size,) + image.shape[2:]), self.index.numpy(), axis=0)


def padding_sources(valid: np.ndarray, margin: int) -> tuple[np.ndarray, np.ndarray]:
    """Where island padding copies from: each invalid texel up to ``margin`` texels from a valid one
    takes the nearest valid texel's value.

    valid : (N, N) bool
    returns : target (K,) and source (K,) flat indices (row * N + col)
    """
    if margin <= 0 or valid.all() or not valid.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    distance, labels = cv2.distanceTransformWithLabels((~valid).astype(np.uint8), cv2.DIST_L2, 5,
                                                       labelType=cv2.DIST_LABEL_PIXEL)
    # labels number the zero (valid) pixels in row-major order, starting at 1
    target = (~valid) & (distance <= margin)
    return np.flatnonzero(target.reshape(-1)), np.flatnonzero(valid.reshape(-1))[labels[target] - 1]


_BACKGROUND = ThreadPoolExecutor(max_workers=1, thread_name_prefix="texgen-texels")
_PADDING_LOCK = threading.Lock()


def build_in_background(mesh: Mesh, size: int) -> "Future[TexelMap]":
    """Start :meth:`TexelMap.build` on texgen's background thread and return at once.

    The UV rasterisation needs no view: callers render their views (or load the model) meanwhile.
    Most of either is memory-bound numpy and OpenGL work that leaves a core idle, so on 2 cores
    the two together take 0.8 s where one after the other take 1.05 s (``bench/bench_geometry.py``).
    The thread keeps its own OpenGL context; errors come out of ``result()``.
    """
    return _BACKGROUND.submit(TexelMap.build, mesh, size)


def _wrap_copies(tri: np.ndarray, faces: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Add copies, shifted by a whole texture, of triangles that reach past the square's edges.

    A face running past u = 1 continues at u = 0 under a repeating sampler; its copy covers
    those texels. tri : (F, 3, 2) texel-centre coordinates; faces : (F,) their face indices.
    """
    if len(tri) == 0 or (tri.min() >= -0.5 and tri.max() <= size - 0.5):  # the usual case: all inside the square
        return tri, faces
    copies, owners = [tri], [faces]
    for axis in (0, 1):
        for shift in (-size, size):
            beyond = tri[..., axis].max(axis=1) > size - 0.5 if shift < 0 else tri[..., axis].min(axis=1) < -0.5
            if beyond.any():
                moved = tri[beyond].copy()
                moved[..., axis] += shift
                copies.append(moved)
                owners.append(faces[beyond])
    return np.concatenate(copies), np.concatenate(owners)


def rasterise_triangles(tri: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """All (texel, triangle) pairs with the texel centre inside the triangle (barycentrics >= -EDGE_EPS).

    The order of the hits is unspecified.
    tri : (F, 3, 2) triangle corners in texel-centre coordinates (x, y)
    returns : texel (H,) flat indices, triangle (H,)
    """
    edges = _edge_functions(tri)
    p2, a0, a1 = edges[:, 0:2], edges[:, 2:4], edges[:, 4:6]

    def inside(group: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        dx, dy = x - p2[group, 0], y - p2[group, 1]
        w0 = a0[group, 0] * dx + a0[group, 1] * dy
        w1 = a1[group, 0] * dx + a1[group, 1] * dy
        w2 = 1.0 - w0 - w1
        return (w0 >= -EDGE_EPS) & (w1 >= -EDGE_EPS) & (w2 >= -EDGE_EPS)

    # zero-area UV triangles cover no texel centre
    return _rasterise_shapes(tri, size, np.isfinite(edges).all(axis=1), inside)


def rasterise_parallelograms(corners: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """All (texel, parallelogram) pairs with the texel centre inside the parallelogram (edges included).

    The order of the hits is unspecified.
    corners : (R, 4, 2) corners in texel-centre coordinates (x, y), in order around each shape; the
        fourth is taken to be corner 0 + corner 2 - corner 1
    returns : texel (H,) flat indices, parallelogram (H,)
    """
    origin, first, second = corners[:, 1], corners[:, 0] - corners[:, 1], corners[:, 2] - corners[:, 1]
    # a point's coordinates along the two sides, 0 to 1 inside: dot products with the sides' duals
    det = first[:, 0] * second[:, 1] - first[:, 1] * second[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        dual = np.stack([np.stack([second[:, 1], -second[:, 0]], axis=1),
                         np.stack([-first[:, 1], first[:, 0]], axis=1)], axis=1) / det[:, None, None]  # (R, 2, 2)

    def inside(group: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        dx, dy = x - origin[group, 0], y - origin[group, 1]
        s = dual[group, 0, 0] * dx + dual[group, 0, 1] * dy
        t = dual[group, 1, 0] * dx + dual[group, 1, 1] * dy
        return (s >= -EDGE_EPS) & (s <= 1 + EDGE_EPS) & (t >= -EDGE_EPS) & (t <= 1 + EDGE_EPS)

    # parallelograms of no area cover no texel centre
    return _rasterise_shapes(corners, size, np.isfinite(dual).all(axis=(1, 2)), inside)


def _rasterise_shapes(corners: np.ndarray, size: int, drawable: np.ndarray,
                      inside: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
                      ) -> tuple[np.ndarray, np.ndarray]:
    """All (texel, shape) pairs with the texel centre inside the shape, by ``inside`` (group (G, 1, 1) shape
    indices, x (G, 1, cols) and y (G, rows, 1) texel coordinates -> (G, rows, cols) bool).

    Shapes are grouped by the size of their bounding box (rounded up a little), so that each group
    tests its texel candidates as one broadcast (G, rows, cols) array: no per-candidate index arithmetic.
    corners : (S, K, 2) in texel-centre coordinates; drawable : (S,) bool, the shapes that can cover texels
    """
    lowest, highest = _corner_bounds(corners)
    low = np.clip(np.ceil(lowest - 1e-9), 0, size - 1).astype(np.int64)
    high = np.clip(np.floor(highest + 1e-9), -1, size - 1).astype(np.int64)
    extent = np.maximum(high - low + 1, 0)
    # boxes with no texel centre cover none
    drawn = np.flatnonzero(drawable & (extent[:, 0] > 0) & (extent[:, 1] > 0))
    box = _round_up(extent[drawn])
    order = np.lexsort((box[:, 0], box[:, 1]))
    drawn, box = drawn[order], box[order]
    starts = np.flatnonzero(np.r_[True, (box[1:] != box[:-1]).any(axis=1)]) if len(drawn) else drawn
    corner = low[:, 1] * size + low[:, 0]  # the texel at each box's first row and column
    texels, shapes = [], []
    for start, stop in zip(starts, np.r_[starts[1:], len(drawn)]):
        cols, rows = box[start]
        per_chunk = max(1, CHUNK_CANDIDATES // (rows * cols))
        cell_offset = (np.arange(rows)[:, None] * size + np.arange(cols)).reshape(-1)
        for first in range(start, stop, per_chunk):
            group = drawn[first:min(stop, first + per_chunk), None, None]  # (G, 1, 1)
            x = low[group, 0] + np.arange(cols)  # (G, 1, cols)
            y = low[group, 1] + np.arange(rows)[:, None]  # (G, rows, 1)
            hits = inside(group, x, y) & (x <= high[group, 0]) & (y <= high[group, 1])
            # the hits as (shape, cell of its box): one flat search and a table of the cells' texel offsets
            hit, cell = np.divmod(np.flatnonzero(hits), rows * cols)
            shape = np.take(group, hit)
            texels.append(np.take(corner, shape) + np.take(cell_offset, cell))
            shapes.append(shape)
    if not texels:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(texels), np.concatenate(shapes)


def _round_up(extent: np.ndarray) -> np.ndarray:
    """Box sizes rounded up to 4 steps per octave above 8 (at most 25% more candidates per axis),
    so that a mesh's triangles fall into few groups."""
    octave = np.floor(np.log2(np.maximum(extent, 1))).astype(np.int64)
    step = np.left_shift(1, np.maximum(octave - 2, 0))
    step[extent <= 8] = 1
    return -(-extent // step) * step


def _edge_functions(tri: np.ndarray) -> np.ndarray:
    """(T, 6) float64 per triangle (p2x, p2y, a0x, a0y, a1x, a1y): its barycentrics at a point p are
    w0 = a0 . (p - p2), w1 = a1 . (p - p2), w2 = 1 - w0 - w1. Rows of zero-area triangles are not finite.

    tri : (T, 3, 2) corners in texel-centre coordinates (x, y)
    """
    p0, p1, p2 = tri[:, 0], tri[:, 1], tri[:, 2]
    denom = (p1[:, 1] - p2[:, 1]) * (p0[:, 0] - p2[:, 0]) + (p2[:, 0] - p1[:, 0]) * (p0[:, 1] - p2[:, 1])
    denom = np.where(np.abs(denom) >= 1e-12, denom, np.nan)
    a0 = np.stack([p1[:, 1] - p2[:, 1], p2[:, 0] - p1[:, 0]], axis=1) / denom[:, None]
    a1 = np.stack([p2[:, 1] - p0[:, 1], p0[:, 0] - p2[:, 0]], axis=1) / denom[:, None]
    return np.concatenate([p2, a0, a1], axis=1)


def _barycentric(edges: np.ndarray, triangle: np.ndarray, texel: np.ndarray, size: int) -> np.ndarray:
    """(K, 3) float64 barycentrics of texel centres (K,) flat indices in triangles (K,) (rows of ``edges``)."""
    e = edges[triangle]
    rows, cols = np.divmod(texel, size)
    dx, dy = cols - e[:, 0], rows - e[:, 1]
    w0 = e[:, 2] * dx + e[:, 3] * dy
    w1 = e[:, 4] * dx + e[:, 5] * dy
    return np.stack([w0, w1, 1.0 - w0 - w1], axis=1)


def _barycentric_f32(edges: np.ndarray, triangle: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> torch.Tensor:
    """(K, 3) float32 torch version of :func:`_barycentric`, for many texels (in chunks), at texels (rows (K,),
    cols (K,)). As precise as float32 allows: p2 is split into a whole number and a fraction, so that
    p - p2 is small before it is rounded."""
    whole = np.floor(edges[:, :2])
    table = torch.from_numpy(np.concatenate([whole, edges[:, :2] - whole, edges[:, 2:]], axis=1).astype(np.float32))
    triangle, rows, cols = torch.from_numpy(triangle), torch.from_numpy(rows), torch.from_numpy(cols)
    bary = torch.empty((len(triangle), 3))
    for part in _chunks(len(triangle)):
        wx, wy, fx, fy, a0x, a0y, a1x, a1y = table.index_select(0, triangle[part]).unbind(1)
        dx = (cols[part].float() - wx).sub_(fx)
        dy = (rows[part].float() - wy).sub_(fy)
        out = bary[part]
        w0 = torch.mul(a0x, dx, out=out[:, 0]).addcmul_(a0y, dy)
        w1 = torch.mul(a1x, dx, out=out[:, 1]).addcmul_(a1y, dy)
        torch.sub(1.0 - w0, w1, out=out[:, 2])
    return bary


def _chunks(count: int) -> list[slice]:
    """Slices of ``count`` per-texel rows, TEXEL_CHUNK at a time: a chain of elementwise passes over
    one chunk stays in the CPU's cache and reuses freed memory, 1.5x faster than whole-array passes."""
    return [slice(start, start + TEXEL_CHUNK) for start in range(0, count, TEXEL_CHUNK)]


def _coverage(mesh: Mesh, tri: np.ndarray, edges: np.ndarray, faces: np.ndarray, sliver: np.ndarray,
              top: np.ndarray, bottom: np.ndarray) -> tuple[np.ndarray, np.ndarray, torch.Tensor, np.ndarray]:
    """Exact coverage from GL's: one triangle per covered texel, its barycentrics, and the overlaps.

    A texel centre is covered when its barycentrics in a triangle are all >= -EDGE_EPS. GL's answer
    stands wherever it is clear of that bound. The rest are settled in float64 against every
    triangle GL drew within SETTLE_REACH texels (5 x 5): texels GL covered within DOUBT of an edge,
    and the uncovered texels around GL's coverage; and slivers (less than SLIVER texels high, which
    GL may draw in only some of their texels) with :func:`rasterise_triangles`. As
    everywhere, the hit of the highest face wins. Overlaps elsewhere: :func:`_layered_overlap`.
    edges : (T, 6) see :func:`_edge_functions`; faces : (T,) the face of each triangle; sliver : (T,) bool
    top, bottom : (N, N) :func:`texgen.render.rasterise_uv`'s images
    returns : texel (M,) sorted flat indices, triangle (M,), barycentrics (M, 3) float32 in [0, 1] summing
        to 1, overlap (M,) bool
    """
    size = top.shape[0]
    texel = np.flatnonzero(top >= 0)
    rows, cols = np.divmod(texel, size)
    triangle = np.take(top, texel)
    bary = _barycentric_f32(edges, triangle, rows, cols)
    near_edge = np.take(texel, np.flatnonzero((bary.amin(dim=1) < DOUBT).numpy()))
    drawn = (top >= 0).astype(np.uint8)
    ring = np.flatnonzero((cv2.dilate(drawn, np.ones((3, 3), np.uint8)) > drawn).reshape(-1))
    # slivers, which GL may draw in only some of their texels, are tested over their whole box
    slivers = np.flatnonzero(sliver)
    sliver_texel, sliver_hit = rasterise_triangles(tri[slivers], size)
    sliver_triangle = slivers[sliver_hit]
    suspects = sorted_unique(np.concatenate([near_edge, ring, sliver_texel]))
    suspect_rows, suspect_cols = np.divmod(suspects, size)
    reach = range(-SETTLE_REACH, SETTLE_REACH + 1)
    neighbourhood = [_pixels(image, suspect_rows + dr, suspect_cols + dc)
                     for image in (top, bottom) for dr in reach for dc in reach]
    hit_texel = np.concatenate([np.repeat(suspects, len(neighbourhood)), sliver_texel])
    hit_triangle = np.concatenate([np.stack(neighbourhood, axis=1).reshape(-1), sliver_triangle])
    drawn_here = hit_triangle >= 0
    settled, settled_triangle, settled_bary, settled_overlap = _settle(mesh, edges, faces, hit_texel[drawn_here],
                                                                       hit_triangle[drawn_here], size)

    overlap = _layered_overlap(mesh, edges, faces, triangle, bary, np.take(bottom, texel), rows, cols)
    # merge: settled texels GL covered are updated in place; the others GL covered and re-decided are
    # dropped unless settled; settled texels GL missed are inserted
    keep = np.ones(len(texel), dtype=bool)
    redo = _positions(texel, suspects)
    keep[redo[redo >= 0]] = False
    updated = _positions(texel, settled)
    known = updated >= 0
    triangle[updated[known]] = settled_triangle[known]
    bary[torch.from_numpy(updated[known])] = settled_bary[torch.from_numpy(known)]
    keep[updated[known]] = True
    overlap[updated[known]] = settled_overlap[known]
    if not keep.all():
        texel, triangle, overlap, bary = texel[keep], triangle[keep], overlap[keep], bary[torch.from_numpy(keep)]
    if not known.all():
        at = np.searchsorted(texel, settled[~known])
        texel = np.insert(texel, at, settled[~known])
        triangle = np.insert(triangle, at, settled_triangle[~known])
        overlap = np.insert(overlap, at, settled_overlap[~known])
        bary = torch.from_numpy(np.insert(bary.numpy(), at, settled_bary[torch.from_numpy(~known)].numpy(), axis=0))
    return texel, triangle, bary, overlap


def _exact_coverage(mesh: Mesh, tri: np.ndarray, edges: np.ndarray, faces: np.ndarray,
                    size: int) -> tuple[np.ndarray, np.ndarray, torch.Tensor, np.ndarray]:
    """:func:`_coverage`'s result from :func:`rasterise_triangles` alone, without OpenGL: every texel of
    every triangle's box is tested, and the hits are settled as GL's doubtful texels are (:func:`_settle`).
    Where triangles are a few texels across, nearly every texel is near an edge or in a sliver, and
    this is far faster than settling GL's coverage texel by texel.
    """
    return _settle(mesh, edges, faces, *rasterise_triangles(tri, size), size)


def _settle(mesh: Mesh, edges: np.ndarray, faces: np.ndarray, hit_texel: np.ndarray, hit_triangle: np.ndarray,
            size: int) -> tuple[np.ndarray, np.ndarray, torch.Tensor, np.ndarray]:
    """One triangle per texel from candidate (texel, triangle) pairs (H,), (H,), repeats allowed.

    The float64 test decides which candidates cover their texel (barycentrics >= -EDGE_EPS); as
    everywhere, the hit of the highest face wins and :func:`_resolve_hits` judges the overlaps. The
    barycentrics are then computed as for every other texel (float32), and clamped into the triangle
    where rounding put them outside it.
    returns : texel (K,) sorted flat indices, triangle (K,), barycentrics (K, 3) float32, overlap (K,) bool
    """
    pairs = sorted_unique(hit_texel * len(edges) + hit_triangle)
    hit_texel, hit_triangle = np.divmod(pairs, len(edges))
    hit_bary = _barycentric(edges, hit_triangle, hit_texel, size)
    inside = hit_bary.min(axis=1) >= -EDGE_EPS
    hit_texel, hit_triangle, hit_bary = hit_texel[inside], hit_triangle[inside], hit_bary[inside]
    texel, pick, overlap = _resolve_hits(mesh, hit_texel, faces[hit_triangle], hit_bary)
    triangle = hit_triangle[pick]
    bary = _barycentric_f32(edges, triangle, *np.divmod(texel, size))
    outside = bary.amin(dim=1) < 0
    if outside.any():
        clamped = bary[outside].clamp_(0.0, 1.0)
        bary[outside] = clamped / clamped.sum(dim=1, keepdim=True)
    return texel, triangle, bary, overlap


def _layered_overlap(mesh: Mesh, edges: np.ndarray, faces: np.ndarray, triangle: np.ndarray, bary: torch.Tensor,
                     lowest: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(M,) bool texels GL saw under two triangles that both cover them and make them ambiguous.

    Two triangles that share the texel only on an edge they share (one island, the centre on
    the edge of both) are not an overlap; any other pair is. GL shows the top and the bottom
    triangle alone, so a texel that stacks more triangles is judged by those two: one that lies
    inside either of them is an overlap.
    triangle, lowest : (M,) the top and bottom triangle at each texel; bary : (M, 3) in the top one
    The bottom triangle's cover is judged in float32, within DOUBT.
    """
    overlap = np.zeros(len(triangle), dtype=bool)
    layered = np.flatnonzero((lowest != triangle) & (lowest >= 0))
    under = _barycentric_f32(edges, lowest[layered], rows[layered], cols[layered]).amin(dim=1).numpy()
    over = bary[torch.from_numpy(layered)].amin(dim=1).numpy()
    islands = mesh.face_islands
    overlap[layered] = (under >= -DOUBT) & ((islands[faces[triangle[layered]]] != islands[faces[lowest[layered]]])
                                              | (under > INTERIOR) | (over > INTERIOR))
    return overlap


def _pixels(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(K,) ``image`` (N, N) at (rows (K,), cols (K,)), -1 outside it."""
    size = image.shape[0]
    inside = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
    return np.where(inside, image[np.clip(rows, 0, size - 1), np.clip(cols, 0, size - 1)], -1)


def _exact_is_cheaper(tri: np.ndarray, sliver: np.ndarray, size: int) -> bool:
    """Whether :func:`_exact_coverage` is expected to be faster than drawing the triangles with GL and
    settling its coverage (:func:`_coverage`). The first tests every texel of every triangle's box; the
    second draws the N x N grid, then tests each texel of a sliver against the triangles around it
    (50 lookups a texel). Costs in texel-grid units, the weights measured on a 2-core CPU (a 1M-face
    sphere at 2048^2, all slivers: 2.5 s against 32 s; 100k faces: 1.2 s against 0.6 s).
    tri : (T, 3, 2) texel-centre coordinates; sliver : (T,) bool, the triangles less than SLIVER texels high
    """
    lowest, highest = _corner_bounds(tri)
    extent = np.maximum(np.floor(highest) - np.ceil(lowest) + 1, 0)
    box = extent[:, 0] * extent[:, 1]
    sliver_box = float(box[sliver].sum())
    return EXACT_COST * float(box.sum()) < size * size + SLIVER_COST * sliver_box


def _corner_bounds(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lowest and the highest (x, y) (S, 2) of each shape's corners (S, K, 2), taken corner by corner:
    4x faster than numpy's reductions along so short an axis."""
    lowest, highest = corners[:, 0].copy(), corners[:, 0].copy()
    for corner in range(1, corners.shape[1]):
        np.minimum(lowest, corners[:, corner], out=lowest)
        np.maximum(highest, corners[:, corner], out=highest)
    return lowest, highest


def _altitude(edges: np.ndarray) -> np.ndarray:
    """(T,) the smallest height of each triangle, from its :func:`_edge_functions` (T, 6): a barycentric
    coordinate rises from 0 to 1 over its corner's height, so the height is 1 over its gradient's length."""
    a0, a1 = edges[:, 2:4], edges[:, 4:6]
    steepest = np.maximum(np.maximum(np.einsum("tk,tk->t", a0, a0), np.einsum("tk,tk->t", a1, a1)),
                          np.einsum("tk,tk->t", a0 + a1, a0 + a1))
    return 1.0 / np.sqrt(steepest)


def _positions(sorted_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(K,) where each of ``values`` (K,) is in ``sorted_values`` (M,) ascending, -1 where absent."""
    if len(sorted_values) == 0:
        return np.full(len(values), -1, dtype=np.int64)
    at = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return np.where(sorted_values[at] == values, at, -1)


def _resolve_hits(mesh: Mesh, hit_texel: np.ndarray, hit_face: np.ndarray,
                  hit_bary: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One hit per covered texel, and which texels are overlaps.

    hit_texel, hit_face, hit_bary : (H,), (H,), (H, 3) every (texel, face) pair whose triangle covers the
        texel, ``hit_texel`` ascending
    returns : texel (M,) sorted flat indices, pick (M,) the hit kept for each (that of the highest
        face index, like a painter's algorithm; of the later hit between equals), overlap (M,) bool
    """
    starts = np.flatnonzero(np.r_[True, hit_texel[1:] != hit_texel[:-1]]) if len(hit_texel) else hit_texel
    texel = hit_texel[starts]
    count = np.diff(np.r_[starts, len(hit_texel)])
    pick = starts.copy()
    overlap = np.zeros(len(texel), dtype=bool)
    # texels hit more than once (shared edges, overlapping UVs) are few: sort those hits alone
    group = np.flatnonzero(count > 1)
    if len(group):
        shared = np.flatnonzero(np.repeat(count > 1, count))
        shared = shared[np.lexsort((shared, hit_face[shared], hit_texel[shared]))]
        first = np.r_[0, np.cumsum(count[group])[:-1]]
        last = np.r_[first[1:], len(shared)] - 1
        pick[group] = shared[last]
        # a texel centre on an edge shared by two faces of one island is not an overlap
        interior = (hit_bary[shared].min(axis=1) > INTERIOR).astype(np.int64)
        islands = mesh.face_islands[hit_face[shared]]
        overlap[group] = ((np.add.reduceat(interior, first) > 1)
                          | (np.minimum.reduceat(islands, first) != np.maximum.reduceat(islands, first)))
    return texel, pick, overlap
