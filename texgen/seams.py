"""UV seams and the seam-discontinuity metric (see shared REFERENCE.md, section 3).

A *seam* is a mesh edge (after welding positions) whose two faces use different UV coordinates
for it. The metric samples the texture at points along each edge, a little inside each of the
two faces, and measures the colour difference (CIE76 Delta E in Lab). The seam statistic divided
by the same statistic over interior edges is the *seam ratio*: 1.0 is seamless.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .mesh import Mesh, row_groups

SAMPLES_PER_EDGE = 5
HARD_EDGE_DEG = 30.0  # a surface turning more sharply than this has a hard edge (Blender's Auto Smooth angle)
UV_MATCH = 1e-6
# the interior statistic is a mean over at most this many interior edges, a fixed random subset (evenly
# spaced ones can all be one kind of edge of a regular mesh): a 1M-face scan's 1.5M took 4 s to measure
INTERIOR_EDGES = 200_000


@dataclass
class EdgePairs:
    """Edges shared by exactly two faces, with each side's UV endpoints.

    uv_a, uv_b : (E, 2, 2) the edge's two endpoints in UV, as seen from face a and face b
    opposite_a, opposite_b : (E, 2) UV of the third corner of face a and face b
    face_a, face_b : (E,) face indices
    corner_a, corner_b : (E, 2) the edge's two ends as face corners (3 face + corner) of face a and face b,
        in the order of ``uv_a`` and ``uv_b``
    seam : (E,) bool, the two sides use different UVs
    """

    uv_a: np.ndarray
    uv_b: np.ndarray
    opposite_a: np.ndarray
    opposite_b: np.ndarray
    face_a: np.ndarray
    face_b: np.ndarray
    corner_a: np.ndarray
    corner_b: np.ndarray
    seam: np.ndarray


def edge_pairs(mesh: Mesh) -> EdgePairs:
    """Find every manifold edge and whether it is a UV seam (vectorised)."""
    faces = mesh.welded_faces.reshape(-1)
    corners = mesh.corner_uvs().reshape(-1, 2)  # corner c of face f is row 3 f + c of both
    ok = np.flatnonzero(mesh.face_ok)
    local = np.array([[0, 1, 2], [1, 2, 0], [2, 0, 1]])  # (start, end, opposite) corners
    face = np.repeat(ok, 3)
    start, end, opposite = (3 * face + np.tile(local[:, k], len(ok)) for k in range(3))
    a, b = np.take(faces, start), np.take(faces, end)  # take: 3x faster than fancy indexing
    flip = a > b
    key = np.where(flip, b, a).astype(np.int64) * (int(faces.max()) + 1) + np.where(flip, a, b)
    order = np.argsort(key, kind="stable")
    key = np.take(key, order)
    # keep edges that appear exactly twice
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    counts = np.diff(np.r_[first, len(key)])
    pair = first[counts == 2]
    i, j = np.take(order, pair), np.take(order, pair + 1)

    def ends(k: np.ndarray) -> np.ndarray:  # (E, 2) corners, ordered by welded vertex index
        return np.where(flip[k][:, None], np.stack([end[k], start[k]], axis=1), np.stack([start[k], end[k]], axis=1))

    corner_a, corner_b = ends(i), ends(j)
    uv_a, uv_b = np.take(corners, corner_a, axis=0), np.take(corners, corner_b, axis=0)
    seam = np.abs(uv_a - uv_b).max(axis=(1, 2)) > UV_MATCH
    return EdgePairs(uv_a, uv_b, np.take(corners, opposite[i], axis=0), np.take(corners, opposite[j], axis=0),
                     face[i], face[j], corner_a, corner_b, seam)


def edge_turns(mesh: Mesh, pairs: EdgePairs) -> np.ndarray:
    """(E,) float the angle in degrees by which the surface turns across each edge: between the two
    sides' normals, each averaged by area over the faces around the edge's ends on its side of any UV
    seam (:func:`fan_normals`: a scan's noisy single faces do not read as a crease, a fold does), or
    between the file's shading normals on the two sides (an artist's hard edges split them), where
    the mesh has them, whichever is larger."""
    def sides(per_corner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # (E, 2, 3) at the edge's ends, each side
        return np.take(per_corner, pairs.corner_a, axis=0), np.take(per_corner, pairs.corner_b, axis=0)

    fan_a, fan_b = sides(fan_normals(mesh))
    cosine = _cosine(fan_a.sum(axis=1), fan_b.sum(axis=1))
    if mesh.normals is not None:
        shading_a, shading_b = sides(np.take(mesh.normals, mesh.normal_faces.reshape(-1), axis=0))  # row 3 f + c
        cosine = np.minimum(cosine, _cosine(shading_a, shading_b).min(axis=1))
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def fan_normals(mesh: Mesh) -> np.ndarray:
    """(F * 3, 3) for each face corner (row 3 f + c), the area-weighted sum of the normals of the faces
    around its vertex whose corner there has the same UV: the fan on its side of any UV seam."""
    corners = np.column_stack([mesh.welded_faces.reshape(-1).astype(np.float64), mesh.corner_uvs().reshape(-1, 2)])
    fan = row_groups(corners)
    weighted = np.repeat(mesh.face_cross * mesh.face_ok[:, None], 3, axis=0)  # |cross| = twice the face's area
    sums = np.stack([np.bincount(fan, weights=weighted[:, k]) for k in range(3)], axis=1)
    return np.take(sums, fan, axis=0)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(...) cosine of the angle between vectors (..., 3); 0 where one is zero."""
    lengths = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return (a * b).sum(axis=-1) / np.maximum(lengths, 1e-300)


def _inward(uv: np.ndarray, opposite: np.ndarray, offset: float) -> np.ndarray:
    """Move edge points (E, S, 2) towards the opposite corner (E, 2) by ``offset`` UV units (at most halfway)."""
    direction = opposite[:, None, :] - uv
    length = np.linalg.norm(direction, axis=-1, keepdims=True)
    return uv + direction * np.minimum(offset / np.maximum(length, 1e-12), 0.5)


def sample_uv(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear texture lookups.

    texture : (H, W, C) uint8 or float in [0, 1]
    uv : (..., 2) UV coordinates (v up); outside [0, 1] they repeat, as under glTF's default sampler
    returns : (..., C) float32 in [0, 1]
    """
    uv = np.where((uv < 0) | (uv > 1), np.mod(uv, 1.0), uv)
    image = torch.from_numpy(np.array(texture, copy=True)).float()
    if texture.dtype == np.uint8:
        image = image / 255.0
    flat = torch.from_numpy(uv.reshape(-1, 2).astype(np.float32))
    grid = torch.stack([flat[:, 0] * 2 - 1, (1 - flat[:, 1]) * 2 - 1], dim=1)[None, None]
    values = F.grid_sample(image.permute(2, 0, 1)[None], grid, mode="bilinear", padding_mode="border",
                           align_corners=False)[0, :, 0].T
    return values.numpy().reshape(uv.shape[:-1] + (image.shape[2],))


def delta_e(rgb_a: np.ndarray, rgb_b: np.ndarray) -> np.ndarray:
    """CIE76 colour difference of two (..., 3) sRGB arrays in [0, 1]."""
    lab = [cv2.cvtColor(np.ascontiguousarray(x.reshape(-1, 1, 3), dtype=np.float32), cv2.COLOR_RGB2Lab)
           for x in (rgb_a, rgb_b)]
    return np.linalg.norm(lab[0] - lab[1], axis=-1).reshape(rgb_a.shape[:-1])


@dataclass
class SeamStats:
    """seam_delta_e : mean colour jump across seam edges (Delta E)
    interior_delta_e : the same statistic over interior edges (``interior_edges`` of them, a fixed
        random subset, when there are more than ``INTERIOR_EDGES``)
    seam_ratio : seam / interior (1.0 = seamless)
    per_seam : (S,) mean Delta E of each seam edge, in the order of ``EdgePairs.seam``'s True entries
    """

    seam_delta_e: float
    interior_delta_e: float
    seam_ratio: float
    seam_edges: int
    per_seam: np.ndarray
    interior_edges: int

    def as_dict(self) -> dict[str, float]:
        return {"seam_ratio": self.seam_ratio, "seam_delta_e": self.seam_delta_e,
                "interior_delta_e": self.interior_delta_e, "seam_edges": self.seam_edges,
                "interior_edges_measured": self.interior_edges}


def seam_stats(mesh: Mesh, texture: np.ndarray, offset_texels: float = 1.5,
               pairs: EdgePairs | None = None) -> SeamStats:
    """Measure colour discontinuity across UV seams, relative to interior edges.

    texture : (H, W, 3) uint8 or float texture for ``mesh``'s UVs
    offset_texels : how far inside each face the two sides are sampled
    """
    pairs = edge_pairs(mesh) if pairs is None else pairs
    offset = offset_texels / max(texture.shape[:2])
    t = np.linspace(0.1, 0.9, SAMPLES_PER_EDGE)[None, :, None]
    seams, interior = np.flatnonzero(pairs.seam), np.flatnonzero(~pairs.seam)
    if len(interior) > INTERIOR_EDGES:  # a fixed random subset: the same edges whatever the texture
        interior = np.sort(np.random.default_rng(0).choice(interior, INTERIOR_EDGES, replace=False))
    measured = np.concatenate([seams, interior])

    def side(uv: np.ndarray, opposite: np.ndarray) -> np.ndarray:
        points = uv[measured, :1] * (1 - t) + uv[measured, 1:] * t  # (E, S, 2)
        return sample_uv(texture, _inward(points, opposite[measured], offset))[..., :3]

    difference = delta_e(side(pairs.uv_a, pairs.opposite_a), side(pairs.uv_b, pairs.opposite_b)).mean(axis=1)
    seam, interior = difference[:len(seams)], difference[len(seams):]
    seam_mean = float(seam.mean()) if len(seam) else 0.0
    interior_mean = float(interior.mean()) if len(interior) else 0.0
    ratio = seam_mean / interior_mean if interior_mean > 0 else (1.0 if seam_mean == 0 else float("inf"))
    return SeamStats(seam_mean, interior_mean, ratio, int(len(seam)), seam, int(len(interior)))
