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

        count = np.bincount(hit_texel, minlength=size * size)
        # a texel centre on an edge shared by two faces of one island is not an overlap
        interior = np.minimum(np.minimum(hit_bary[:, 0], hit_bary[:, 1]), hit_bary[:, 2]) > 1e-4
        interior_count = np.bincount(hit_texel, weights=interior.astype(np.int64), minlength=size * size)
        # keep one hit per texel: the last one written wins, like a painter's algorithm
        order = np.argsort(hit_texel, kind="stable")
        hit_texel, hit_face = hit_texel[order], hit_face[order]
        last = np.r_[hit_texel[1:] != hit_texel[:-1], True]
        texel, face, bary = hit_texel[last], hit_face[last], hit_bary[order[last]]
        overlap = (interior_count[texel] > 1) | ((count[texel] > 1) & _different_islands(mesh, hit_texel, hit_face, texel))

        positions = mesh.unit_positions[mesh.faces[face]]  # (M, 3, 3)
        position = (bary[:, 0, None] * positions[:, 0] + bary[:, 1, None] * positions[:, 1]
                    + bary[:, 2, None] * positions[:, 2])
        face_normal = mesh.face_cross / np.maximum(np.linalg.norm(mesh.face_cross, axis=1, keepdims=True), 1e-300)
        normal = face_normal[face]
        island = mesh.face_islands[face]
        return cls(size, torch.from_numpy(texel), torch.from_numpy(face), torch.from_numpy(bary.astype(np.float32)),
                   torch.from_numpy(position.astype(np.float32)), torch.from_numpy(normal.astype(np.float32)),
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

    tri : (F, 3, 2) triangle corners in texel-centre coordinates (x, y)
    """
    low = np.clip(np.ceil(tri.min(axis=1) - 1e-9), 0, size - 1).astype(np.int64)
    high = np.clip(np.floor(tri.max(axis=1) + 1e-9), -1, size - 1).astype(np.int64)
    extent = np.maximum(high - low + 1, 0)
    area = extent[:, 0] * extent[:, 1]
    (p0, p1, p2) = (tri[:, 0], tri[:, 1], tri[:, 2])
    denom = (p1[:, 1] - p2[:, 1]) * (p0[:, 0] - p2[:, 0]) + (p2[:, 0] - p1[:, 0]) * (p0[:, 1] - p2[:, 1])
    area[np.abs(denom) < 1e-12] = 0  # zero-area UV triangle: covers no texel centre
    # per face, the coefficients of the two edge functions: w0 = edge0 . (p - p2) / denom, likewise w1
    edge0 = np.stack([p1[:, 1] - p2[:, 1], p2[:, 0] - p1[:, 0]], axis=1)
    edge1 = np.stack([p2[:, 1] - p0[:, 1], p0[:, 0] - p2[:, 0]], axis=1)
    texels, faces, barys = [], [], []
    bounds = np.searchsorted(np.cumsum(area), np.arange(CHUNK_CANDIDATES, area.sum() + CHUNK_CANDIDATES,
                                                        CHUNK_CANDIDATES), side="right")
    start = 0
    for stop in np.unique(np.r_[bounds, len(tri)]):
        chunk = np.arange(start, stop)
        start = stop
        if len(chunk) == 0 or area[chunk].sum() == 0:
            continue
        face = np.repeat(chunk, area[chunk])
        offset = np.arange(len(face)) - np.repeat(np.cumsum(area[chunk]) - area[chunk], area[chunk])
        row, col = np.divmod(offset, extent[face, 0])
        x = low[face, 0] + col
        y = low[face, 1] + row
        dx, dy, scale = x - p2[face, 0], y - p2[face, 1], denom[face]
        w0 = (edge0[face, 0] * dx + edge0[face, 1] * dy) / scale
        w1 = (edge1[face, 0] * dx + edge1[face, 1] * dy) / scale
        w2 = 1.0 - w0 - w1
        inside = (w0 >= -EDGE_EPS) & (w1 >= -EDGE_EPS) & (w2 >= -EDGE_EPS)
        bary = np.clip(np.stack([w0[inside], w1[inside], w2[inside]], axis=1), 0.0, 1.0)
        texels.append(y[inside] * size + x[inside])
        faces.append(face[inside])
        barys.append(bary / bary.sum(axis=1, keepdims=True))
    if not texels:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3))
    return np.concatenate(texels), np.concatenate(faces), np.concatenate(barys)


def _different_islands(mesh: Mesh, hit_texel: np.ndarray, hit_face: np.ndarray, texel: np.ndarray) -> np.ndarray:
    """(M,) bool: the sorted hits of each kept texel come from more than one UV island."""
    if len(texel) == 0:
        return np.zeros(0, dtype=bool)
    islands = mesh.face_islands[hit_face]
    first = np.searchsorted(hit_texel, texel, side="left")
    return np.minimum.reduceat(islands, first) != np.maximum.reduceat(islands, first)
