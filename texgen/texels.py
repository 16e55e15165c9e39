"""The UV-space rasteriser: which face, where in 3D and facing where, for every texel.

Texel (row, col) of an N x N texture has its centre at u = (col + 0.5) / N, v = 1 - (row + 0.5) / N
(image row 0 is the top of the texture, v = 1). A texel is *valid* when its centre lies inside a
UV triangle of a non-degenerate face. Texels inside several UV triangles (mirrored or overlapping
UVs) are *overlap* texels: their colour is ambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from .mesh import Mesh

EDGE_EPS = 1e-7  # barycentric slack so that texels on shared edges are not lost
CHUNK_CANDIDATES = 4_000_000


@dataclass
class TexelMap:
    """Per-texel geometry of one mesh at one texture size; build once, reuse for every view.

    size : N, the texture is N x N
    index : (M,) int64 flat index (row * N + col) of each valid texel
    face : (M,) int64 face covering the texel
    bary : (M, 3) float32 barycentric coordinates in that face
    position : (M, 3) float32 texel centre in the unit frame
    normal : (M, 3) float32 unit geometric normal of the face
    overlap : (M,) bool texel covered by more than one UV triangle
    island : (M,) int32 UV island of the face
    """

    size: int
    index: torch.Tensor
    face: torch.Tensor
    bary: torch.Tensor
    position: torch.Tensor
    normal: torch.Tensor
    overlap: torch.Tensor
    island: torch.Tensor

    @classmethod
    def build(cls, mesh: Mesh, size: int) -> "TexelMap":
        """Rasterise ``mesh``'s UV triangles into an N x N grid (vectorised, chunked over faces)."""
        mesh.require_uvs()
        if size < 1:
            raise ValueError(f"texture size must be positive, got {size}")
        faces = np.flatnonzero(mesh.face_ok)
        corners = mesh.corner_uvs()[faces]
        # texel-centre coordinates: x = u * N - 0.5, y = (1 - v) * N - 0.5
        tri = np.stack([corners[..., 0] * size - 0.5, (1.0 - corners[..., 1]) * size - 0.5], axis=-1)
        tri, faces = _wrap_copies(tri, faces, size)
        hit_texel, hit_face, hit_bary = rasterise_triangles(tri, size)
        hit_face = faces[hit_face]
        texel, pick, overlap = _resolve_hits(mesh, hit_texel, hit_face, hit_bary, size)
        face, bary = hit_face[pick], hit_bary[pick]
        corners = mesh.unit_positions[mesh.faces].reshape(-1, 9)[face].reshape(-1, 3, 3)  # one row gather per texel
        position = np.einsum("mk,mkd->md", bary, corners)
        face_normal = mesh.face_cross / np.maximum(np.linalg.norm(mesh.face_cross, axis=1, keepdims=True), 1e-300)
        normal = face_normal.astype(np.float32)[face]
        island = mesh.face_islands[face]
        return cls(size, torch.from_numpy(texel), torch.from_numpy(face), torch.from_numpy(bary),
                   torch.from_numpy(position), torch.from_numpy(normal),
                   torch.from_numpy(overlap), torch.from_numpy(island.astype(np.int32)))

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
    def normal_dot_position(self) -> torch.Tensor:
        """(M,) n . p of each texel: with ``position_sq``, facing tests need no (M, 3) temporaries."""
        return (self.normal * self.position).sum(dim=1)

    @cached_property
    def position_sq(self) -> torch.Tensor:
        """(M,) |p|^2 of each texel."""
        return self.position.square().sum(dim=1)

    @cached_property
    def number_at(self) -> np.ndarray:
        """(N, N) int64 the valid texel at each row and column (its index into the per-texel arrays), -1 where invalid."""
        numbers = np.full(self.size * self.size, -1, dtype=np.int64)
        numbers[self.index.numpy()] = np.arange(self.count)
        return numbers.reshape(self.size, self.size)

    @cached_property
    def rows_cols(self) -> tuple[np.ndarray, np.ndarray]:
        """Row and column (M,) of each valid texel."""
        index = self.index.numpy()
        return index // self.size, index % self.size

    def to_image(self, values: torch.Tensor | np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Scatter per-texel ``values`` (M,) or (M, C) into an (N, N) or (N, N, C) float32 image."""
        values = values.numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
        shape = (self.size * self.size,) + values.shape[1:]
        image = np.full(shape, fill, dtype=np.float32)
        image[self.index.numpy()] = values
        return image.reshape((self.size, self.size) + values.shape[1:])

    def gather(self, image: np.ndarray) -> np.ndarray:
        """Per-texel values (M, ...) read from an (N, N, ...) image."""
        return image.reshape((self.size * self.size,) + image.shape[2:])[self.index.numpy()]


def _wrap_copies(tri: np.ndarray, faces: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Add copies, shifted by a whole texture, of triangles that reach past the square's edges.

    A face running past u = 1 continues at u = 0 under a repeating sampler; its copy covers
    those texels. tri : (F, 3, 2) texel-centre coordinates; faces : (F,) their face indices.
    """
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


def rasterise_triangles(tri: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (texel, triangle, barycentrics) with the texel centre inside the triangle.

    Triangles are grouped by the size of their bounding box (rounded up a little), so that each
    group tests its texel candidates as one broadcast (G, rows, cols) array: no per-candidate
    index arithmetic. The order of the hits is unspecified.
    tri : (F, 3, 2) triangle corners in texel-centre coordinates (x, y)
    returns : texel (H,) flat indices, triangle (H,), barycentrics (H, 3) float32
    """
    low = np.clip(np.ceil(tri.min(axis=1) - 1e-9), 0, size - 1).astype(np.int64)
    high = np.clip(np.floor(tri.max(axis=1) + 1e-9), -1, size - 1).astype(np.int64)
    extent = np.maximum(high - low + 1, 0)
    p0, p1, p2 = tri[:, 0], tri[:, 1], tri[:, 2]
    denom = (p1[:, 1] - p2[:, 1]) * (p0[:, 0] - p2[:, 0]) + (p2[:, 0] - p1[:, 0]) * (p0[:, 1] - p2[:, 1])
    # zero-area UV triangles cover no texel centre; neither do boxes with no texel centre
    drawn = np.flatnonzero((np.abs(denom) >= 1e-12) & (extent > 0).all(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        # w0 = a0 . (p - p2), w1 = a1 . (p - p2): the edge functions, divided by the area once per triangle
        a0 = np.stack([p1[:, 1] - p2[:, 1], p2[:, 0] - p1[:, 0]], axis=1) / denom[:, None]
        a1 = np.stack([p2[:, 1] - p0[:, 1], p0[:, 0] - p2[:, 0]], axis=1) / denom[:, None]
    box = _round_up(extent[drawn])
    order = np.lexsort((box[:, 0], box[:, 1]))
    drawn, box = drawn[order], box[order]
    starts = np.flatnonzero(np.r_[True, (box[1:] != box[:-1]).any(axis=1)]) if len(drawn) else drawn
    texels, triangles, barys = [], [], []
    for start, stop in zip(starts, np.r_[starts[1:], len(drawn)]):
        cols, rows = box[start]
        per_chunk = max(1, CHUNK_CANDIDATES // (rows * cols))
        for first in range(start, stop, per_chunk):
            group = drawn[first:min(stop, first + per_chunk), None, None]  # (G, 1, 1)
            x = low[group, 0] + np.arange(cols)  # (G, 1, cols)
            y = low[group, 1] + np.arange(rows)[:, None]  # (G, rows, 1)
            dx, dy = x - p2[group, 0], y - p2[group, 1]
            w0 = a0[group, 0] * dx + a0[group, 1] * dy
            w1 = a1[group, 0] * dx + a1[group, 1] * dy
            w2 = 1.0 - w0 - w1
            inside = ((w0 >= -EDGE_EPS) & (w1 >= -EDGE_EPS) & (w2 >= -EDGE_EPS)
                      & (x <= high[group, 0]) & (y <= high[group, 1]))
            hit, row, col = np.nonzero(inside)
            triangle = group[hit, 0, 0]
            bary = np.clip(np.stack([w0[inside], w1[inside], w2[inside]], axis=1, dtype=np.float32), 0.0, 1.0)
            texels.append((low[triangle, 1] + row) * size + low[triangle, 0] + col)
            triangles.append(triangle)
            barys.append(bary / bary.sum(axis=1, keepdims=True))
    if not texels:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3), np.float32)
    return np.concatenate(texels), np.concatenate(triangles), np.concatenate(barys)


def _round_up(extent: np.ndarray) -> np.ndarray:
    """Box sizes rounded up to 4 steps per octave above 8 (at most 25% more candidates per axis),
    so that a mesh's triangles fall into few groups."""
    octave = np.floor(np.log2(np.maximum(extent, 1))).astype(np.int64)
    step = np.left_shift(1, np.maximum(octave - 2, 0))
    step[extent <= 8] = 1
    return -(-extent // step) * step


def _resolve_hits(mesh: Mesh, hit_texel: np.ndarray, hit_face: np.ndarray, hit_bary: np.ndarray,
                  size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One hit per covered texel, and which texels are overlaps.

    hit_texel, hit_face, hit_bary : (H,), (H,), (H, 3) every (texel, face) pair of the rasteriser
    returns : texel (M,) sorted flat indices, pick (M,) the hit kept for each (that of the highest
        face index, like a painter's algorithm), overlap (M,) bool
    """
    count = np.bincount(hit_texel, minlength=size * size)
    texel = np.flatnonzero(count)
    winner = np.zeros(size * size, dtype=np.int64)
    single = count[hit_texel] == 1
    winner[hit_texel[single]] = np.flatnonzero(single)
    # texels hit more than once (shared edges, overlapping UVs) are few: sort those hits alone
    shared = np.flatnonzero(~single)
    shared = shared[np.lexsort((hit_face[shared], hit_texel[shared]))]
    shared_texel = hit_texel[shared]
    starts = np.flatnonzero(np.r_[True, shared_texel[1:] != shared_texel[:-1]])
    overlap = np.zeros(size * size, dtype=bool)
    if len(shared):
        ends = np.r_[starts[1:], len(shared)] - 1
        winner[shared_texel[ends]] = shared[ends]
        # a texel centre on an edge shared by two faces of one island is not an overlap
        interior = (hit_bary[shared].min(axis=1) > 1e-4).astype(np.int64)
        islands = mesh.face_islands[hit_face[shared]]
        overlap[shared_texel[starts]] = ((np.add.reduceat(interior, starts) > 1)
                                         | (np.minimum.reduceat(islands, starts) != np.maximum.reduceat(islands, starts)))
    return texel, winner[texel], overlap[texel]
