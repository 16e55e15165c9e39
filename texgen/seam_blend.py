"""Seam smoothing: make the two sides of every UV seam meet, without a new hard line.

Shared REFERENCE.md, section 2: "smooth seams by blending colours across 3D-adjacent texels
that lie on different UV islands". For every seam edge (:func:`texgen.seams.edge_pairs`) the
two sides are the same 3D segment drawn in two places of the UV layout. Both sides are sampled
at the same point of the edge, a little inside each face; each side is then moved half-way
towards the other (or, given a per-texel confidence, a guessed side moves towards a trusted one
and two trusted sides stay). That correction is an *offset* (the texture keeps its own detail), it is
full strength up to ``core_texels`` from the seam and fades out smoothly at ``band_texels``
(a membrane correction, as in Poisson image blending, Perez et al. 2003). Texels farther than
``band_texels`` from every seam are returned exactly as they were.

Why the paint pipeline needs it: next to creases (the rim of the avocado's cut) the projection
erodes the views, so a strip of texels on both sides of the seam is seen by no view and is
filled from the nearest painted texel on its own island. Both sides then carry colours from a
few texels inward, which differ where the texture changes towards the rim, and the seam shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .fill import pad_texture
from .mesh import Mesh
from .seams import EdgePairs, edge_pairs, sample_uv
from .texels import TexelMap, rasterise_parallelograms

BAND_TEXELS = 10.0
CORE_TEXELS = 2.0
SAMPLE_INWARD = (0.75,)  # texels inside the face where each side's seam colour is read
SAMPLE_ALONG = (-2.0, -1.0, 0.0, 1.0, 2.0)  # texels along the edge, averaged against texture noise
STRETCH_SLACK = 2.0  # slack on how far in 3D a band texel may be from its seam, given the UV stretch


@dataclass
class SeamBand:
    """Texels near seams, one row per (texel, seam side) pair closer than the band width.

    The seam sides of S selected seam edges are numbered 2 s (face a) and 2 s + 1 (face b);
    ``side ^ 1`` is the other side of the same 3D edge.

    texel : (K,) int64 index into the TexelMap's valid texels
    side : (K,) int64 seam side
    t : (K,) float64 position along the edge in [0, 1], from the lower welded vertex
    distance : (K,) float64 distance to the edge in texels
    edge_uv : (2S, 2, 2) UV endpoints of each side, in the same order for both sides
    inward : (2S, 2) unit UV direction from each side's edge into its face
    edge : (S,) int64 the selected seams' indices into the EdgePairs
    mask : (M,) bool texels in the band
    """

    texel: np.ndarray
    side: np.ndarray
    t: np.ndarray
    distance: np.ndarray
    edge_uv: np.ndarray
    inward: np.ndarray
    edge: np.ndarray
    mask: np.ndarray

    def falloff(self, core_texels: float, band_texels: float) -> np.ndarray:
        """(M,) float strength of a correction: 1 up to ``core_texels`` from the nearest seam,
        easing (smoothstep) to 0 at ``band_texels``; 0 outside the band."""
        nearest = np.full(len(self.mask), np.inf)
        np.minimum.at(nearest, self.texel, self.distance)
        return 1.0 - _smoothstep((nearest - core_texels) / max(band_texels - core_texels, 1e-6))


def band_for_size(size: int) -> tuple[float, float]:
    """(band_texels, core_texels) for an N x N texture: the defaults are for 1024^2 and scale with N,
    so a small texture's seam band stays as narrow a strip of the surface as a large one's."""
    scale = size / 1024.0
    return max(2.0, BAND_TEXELS * scale), max(1.0, CORE_TEXELS * scale)


def seam_band(mesh: Mesh, texels: TexelMap, band_texels: float = BAND_TEXELS, select: np.ndarray | None = None,
              pairs: EdgePairs | None = None) -> SeamBand:
    """Every valid texel within ``band_texels`` of a selected seam edge, on that edge's own face side.

    A texel belongs to a seam side when it lies on the same UV island as the side's face, on the
    face's side of the edge line (or on it), and not much farther from the edge in 3D
    than in UV (so parts of an island that only come close in the layout are left out).
    select : (E,) bool over ``pairs`` (default: every seam); only seam edges in it are used
    """
    pairs = edge_pairs(mesh) if pairs is None else pairs
    chosen = pairs.seam if select is None else pairs.seam & np.asarray(select, dtype=bool)
    edge = np.flatnonzero(chosen)
    size = texels.size
    edge_uv = np.stack([pairs.uv_a[edge], pairs.uv_b[edge]], axis=1).reshape(-1, 2, 2)  # (2S, 2, 2)
    opposite = np.stack([pairs.opposite_a[edge], pairs.opposite_b[edge]], axis=1).reshape(-1, 2)
    face = np.stack([pairs.face_a[edge], pairs.face_b[edge]], axis=1).reshape(-1)
    # texel-centre coordinates (x right, y down), as in TexelMap
    start, end, far = (np.stack([p[..., 0] * size - 0.5, (1.0 - p[..., 1]) * size - 0.5], axis=-1)
                       for p in (edge_uv[:, 0], edge_uv[:, 1], opposite))
    along = end - start
    length = np.linalg.norm(along, axis=1)
    unit = along / np.maximum(length, 1e-12)[:, None]
    normal = np.stack([-unit[:, 1], unit[:, 0]], axis=1)
    normal *= np.where(((far - start) * normal).sum(axis=1) < 0, -1.0, 1.0)[:, None]  # into the face
    inward = normal * np.array([1.0, -1.0])  # the same direction in UV (v up)

    # candidates: texels inside a rectangle on the face's side of each edge, as long as the edge
    # plus the band at both ends and as deep as the band: one row per (texel, side)
    reach = band_texels + 1.0
    a, b = start - unit * reach, end + unit * reach
    near, deep = -normal, normal * reach
    rectangles = np.stack([a + near, b + near, b + deep, a + deep], axis=1)
    rectangles[length < 1e-6] = 0.0  # a seam side of zero UV length covers nothing
    hit, side = rasterise_parallelograms(rectangles, size)
    texel = texels.number_of(hit)
    keep = np.flatnonzero(texel >= 0)  # row selections by index: numpy's take is 3x faster than a mask
    hit, texel, side = np.take(hit, keep), np.take(texel, keep), np.take(side, keep)
    keep = np.flatnonzero(np.take(texels.island.numpy(), texel) == np.take(mesh.face_islands, np.take(face, side)))
    hit, texel, side = np.take(hit, keep), np.take(texel, keep), np.take(side, keep)

    # in the UV plane (texel units): where along the edge, how far from it, on which side of it
    row, col = np.divmod(hit, size)
    per_side = np.take(np.concatenate([start, unit, normal, length[:, None]], axis=1), side, axis=0)  # (H, 7)
    across_x, across_y = col - per_side[:, 0], row - per_side[:, 1]
    along_edge = across_x * per_side[:, 2] + across_y * per_side[:, 3]
    t = np.clip(along_edge / np.maximum(per_side[:, 6], 1e-12), 0.0, 1.0)
    along_edge = t * per_side[:, 6]
    off_x, off_y = across_x - per_side[:, 2] * along_edge, across_y - per_side[:, 3] * along_edge
    distance = np.sqrt(off_x * off_x + off_y * off_y)  # np.hypot is 3x slower here; this is within an ulp
    depth = across_x * per_side[:, 4] + across_y * per_side[:, 5]
    keep = np.flatnonzero((distance < band_texels) & (depth > -1e-6))
    texel, side, t, distance = (np.take(x, keep) for x in (texel, side, t, distance))
    # in 3D: not much farther from the same edge than in UV, given the faces' UV stretch
    stretch = _stretch(mesh, size)
    scale = np.maximum(np.take(stretch, np.take(face, side)), np.take(stretch, np.take(texels.face.numpy(), texel)))
    corner_uv = mesh.corner_uvs()[face]  # (2S, 3, 2)
    corner = np.abs(corner_uv[:, None, :, :] - edge_uv[:, :, None, :]).sum(axis=-1).argmin(axis=2)  # (2S, 2)
    edge_3d = mesh.unit_positions[np.take_along_axis(mesh.faces[face], corner, axis=1)]  # (2S, 2, 3) float32
    ends = np.take(np.concatenate([edge_3d[:, 0], edge_3d[:, 1] - edge_3d[:, 0]], axis=1), side, axis=0)  # (K, 6)
    point_3d = ends[:, :3] + ends[:, 3:] * t[:, None].astype(np.float32)
    gap = np.take(texels.position.numpy(), texel, axis=0) - point_3d
    gap_3d = np.sqrt(np.einsum("kd,kd->k", gap, gap))
    keep = np.flatnonzero(gap_3d <= STRETCH_SLACK * (distance + 1.0) * scale)
    texel, side, t, distance = (np.take(x, keep) for x in (texel, side, t, distance))
    mask = np.zeros(texels.count, dtype=bool)
    mask[texel] = True
    return SeamBand(texel, side, t, distance, edge_uv, inward, edge, mask)


def smooth_seams(mesh: Mesh, texels: TexelMap, color: torch.Tensor, band_texels: float = BAND_TEXELS,
                 core_texels: float = CORE_TEXELS, select: np.ndarray | None = None,
                 confidence: torch.Tensor | None = None, pairs: EdgePairs | None = None,
                 band: SeamBand | None = None) -> torch.Tensor:
    """Blend colours across UV seams; texels outside the band are returned bit-for-bit unchanged.

    color : (M, C) float texel colours (every texel filled, e.g. after ``fill_unseen``)
    band_texels : the correction fades to zero at this distance from the seam (texels)
    core_texels : up to this distance the correction has full strength
    select : (E,) bool seam edges to blend (default all); band : a precomputed ``seam_band``
    confidence : (M,) float in [0, 1], how much each texel's colour is to be trusted (e.g. the
        baker's ``painted`` mask). With uncertainties u = 1 - confidence on the two sides, a
        side moves the fraction u_self * (1 - u_other / 2) of the jump: two guessed sides meet
        half-way, a guessed side takes a trusted side's colour, and a jump between two trusted
        sides (a material boundary the views saw) is kept. Default: every texel is a guess.
    returns : (M, C) float, a new tensor, within the value range of ``color``
    """
    band = seam_band(mesh, texels, band_texels, select, pairs) if band is None else band
    out = color.clone()
    if len(band.texel) == 0:
        return out
    uncertain = torch.ones(texels.count) if confidence is None else 1.0 - confidence.float().clamp(0, 1)
    values = torch.cat([color.float().reshape(texels.count, -1), uncertain[:, None]], dim=1)
    image = pad_texture(texels, texels.to_image(values), 3)  # bilinear taps at borders read the island
    move = _moves(band, image, texels.size)
    # several seams near one texel: inverse-distance weights, so the correction stays continuous
    weight = 1.0 / (band.distance + 0.25) ** 2
    texel = np.flatnonzero(band.mask)
    total = np.bincount(band.texel, weights=weight, minlength=texels.count)[texel]
    blended = np.stack([np.bincount(band.texel, weights=weight * move[:, c], minlength=texels.count)[texel]
                        for c in range(move.shape[1])], axis=1) / total[:, None]
    fade = band.falloff(core_texels, band_texels)[texel]
    index = torch.from_numpy(texel)
    moved = color[index] + torch.from_numpy((blended * fade[:, None]).astype(np.float32)).reshape(
        (-1,) + color.shape[1:]).to(color.dtype)
    out[index] = moved.clamp(color.min(), color.max())  # [0, 1] colours stay in [0, 1]
    return out


def _moves(band: SeamBand, image: np.ndarray, size: int) -> np.ndarray:
    """(K, C) how far each band row's seam side moves towards the other side, at the row's ``t``.

    Both sides of a seam are sampled at the same points, one per texel of edge length, each the
    mean of bilinear lookups a little inside the face (``SAMPLE_INWARD``) and along the edge
    (``SAMPLE_ALONG``); rows interpolate between the two points around their ``t``.
    image : (N, N, C + 1) float colours and uncertainty, padded around the islands
    """
    length = np.linalg.norm(band.edge_uv[:, 1] - band.edge_uv[:, 0], axis=1) * size  # (2S,)
    count = np.repeat(np.ceil(np.maximum(length[0::2], length[1::2])).astype(np.int64) + 2, 2)
    start = np.r_[0, np.cumsum(count)[:-1]]
    side = np.repeat(np.arange(len(count)), count)
    t = (np.arange(len(side)) - start[side]) / (count[side] - 1)  # (P,)
    along = np.asarray(SAMPLE_ALONG)[None, :] / np.maximum(length[side], 1e-12)[:, None]
    t_along = np.clip(t[:, None] + along, 0.0, 1.0)[..., None]  # (P, A, 1)
    uv = band.edge_uv[side]
    points = uv[:, None, 0] * (1 - t_along) + uv[:, None, 1] * t_along  # (P, A, 2)
    points = points[:, :, None] + (np.asarray(SAMPLE_INWARD)[None, None, :, None] / size
                                   * band.inward[side][:, None, None])  # (P, A, I, 2)
    colour = sample_uv(image, points).reshape(len(side), -1, image.shape[2]).mean(axis=1)
    partner = np.arange(len(side)) - start[side] + start[side ^ 1]
    uncertain, other = colour[:, -1:], colour[partner, -1:]
    jump = (colour[partner, :-1] - colour[:, :-1]) * uncertain * (1.0 - other / 2)  # (P, C)
    position = band.t * (count[band.side] - 1)
    low = np.minimum(np.floor(position).astype(np.int64), count[band.side] - 2)
    fraction = (position - low)[:, None]
    first = start[band.side] + low
    return np.take(jump, first, axis=0) * (1 - fraction) + np.take(jump, first + 1, axis=0) * fraction


def _stretch(mesh: Mesh, size: int) -> np.ndarray:
    """(F,) how far (unit frame) one texel step reaches in 3D at most, on each face: the largest
    singular value of the face's UV-to-3D Jacobian (infinite for a UV triangle of no area).

    With the UV edges as the columns [[a, b], [c, d]] of a 2 x 2 matrix and e1, e2 the 3D edges,
    the Jacobian's columns are (d e1 - c e2) / det and (a e2 - b e1) / det, written out: 4x faster
    than numpy's batched inverse, equal to it within 1e-14.
    """
    uv = mesh.corner_uvs() * size
    position = mesh.unit_positions[mesh.faces].astype(np.float64)
    a, c = uv[:, 1, 0] - uv[:, 0, 0], uv[:, 1, 1] - uv[:, 0, 1]
    b, d = uv[:, 2, 0] - uv[:, 0, 0], uv[:, 2, 1] - uv[:, 0, 1]
    det = a * d - b * c
    flat = np.abs(det) < 1e-9
    inverse = (1.0 / np.where(flat, 1.0, det))[:, None]
    e1, e2 = position[:, 1] - position[:, 0], position[:, 2] - position[:, 0]
    first = (e1 * d[:, None] - e2 * c[:, None]) * inverse  # (F, 3) the Jacobian's columns
    second = (e2 * a[:, None] - e1 * b[:, None]) * inverse
    g00, g01, g11 = (np.einsum("fk,fk->f", x, y) for x, y in ((first, first), (first, second), (second, second)))
    largest = np.sqrt((g00 + g11) / 2 + np.sqrt(((g00 - g11) / 2) ** 2 + g01 ** 2))
    return np.where(flat, np.inf, largest)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


__all__ = ["BAND_TEXELS", "CORE_TEXELS", "SeamBand", "band_for_size", "seam_band", "smooth_seams"]
