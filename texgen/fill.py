"""Fill texels no view saw, and pad UV islands.

Unseen texels take the colour of the nearest painted texel *on the surface in 3D* (a Voronoi
fill, as SyncMVD does), which crosses UV seams correctly; a few steps of masked diffusion
inside the UV layout then smooth the Voronoi cells. Padding copies each island's border
colour outwards so bilinear filtering and mipmaps never reach the background.
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import torch
from scipy.spatial import cKDTree

from .texels import TexelMap, padding_sources

SMOOTH_ITERATIONS = 16
SEARCH_ALONE = 4096  # islands with this many unpainted texels get a nearest-texel search of their own


def fill_unseen(texels: TexelMap, color: torch.Tensor, painted: torch.Tensor,
                smooth_iterations: int = SMOOTH_ITERATIONS) -> torch.Tensor:
    """Give every unpainted texel a colour; painted texels are returned unchanged.

    color : (M, C) float texel colours
    painted : (M,) bool
    returns : (M, C) float
    """
    painted_np = painted.numpy()
    if painted_np.all():
        return color.clone()
    if not painted_np.any():
        return torch.full_like(color, 0.5)
    filled = color.numpy().copy()
    filled[~painted_np] = filled[nearest_painted(texels, painted_np)]
    if smooth_iterations:
        filled = _smooth_unpainted(texels, filled, painted_np, smooth_iterations)
    return torch.from_numpy(filled)


def nearest_painted(texels: TexelMap, painted: np.ndarray) -> np.ndarray:
    """For each unpainted texel, the nearest painted texel in 3D.

    Texels of the same UV island are preferred: across a UV seam there is often another
    surface (the skin around a cut, the lid of a box) whose colour does not belong here.
    Only the painted frontier is searched: the painted texels with a UV neighbour that is not
    a painted texel of their island. Where UVs map the surface without distortion this changes
    nothing (an interior texel always has a neighbour nearer the target), and it keeps the
    search small when most of the texture is painted.
    painted : (M,) bool, some of it True
    returns : (T,) int64 the painted texel for each of the T unpainted texels, in ascending order
    """
    positions, island = texels.position.numpy(), texels.island.numpy()
    target = np.flatnonzero(~painted)
    frontier = np.flatnonzero(_frontier(texels, painted))
    # one 3-D search per island with many targets (8x faster than one search with the island as a far-apart
    # fourth axis); islands with few targets are searched together that way (a tree costs 0.1-0.5 ms to start)
    nearest = np.full(len(target), -1, dtype=np.int64)
    islands, few = int(island.max()) + 1, []
    for targets, sources in zip(*(_by_island(np.take(island, texel), islands) for texel in (target, frontier))):
        if len(targets) and len(sources):
            if len(targets) < SEARCH_ALONE:
                few.append((targets, sources))
                continue
            found = cKDTree(np.take(positions, frontier[sources], axis=0)).query(
                np.take(positions, target[targets], axis=0), workers=-1)[1]
            nearest[targets] = frontier[sources[found]]
    if few:
        targets, sources = (np.concatenate(parts) for parts in zip(*few))

        def lifted(texel: np.ndarray) -> np.ndarray:
            return np.concatenate([np.take(positions, texel, axis=0), np.take(island, texel)[:, None] * 1e3], axis=1,
                                  dtype=np.float64)

        found = cKDTree(lifted(frontier[sources])).query(lifted(target[targets]), workers=-1)[1]
        nearest[targets] = frontier[sources[found]]
    elsewhere = nearest < 0  # the island has no painted texel at all
    if elsewhere.any():
        # an interior texel of another island can be nearest (a lid over a box): search them all
        source = np.flatnonzero(painted)
        tree = cKDTree(np.take(positions, source, axis=0), balanced_tree=False, compact_nodes=False)  # 4x faster
        nearest[elsewhere] = source[tree.query(positions[target[elsewhere]], workers=-1)[1]]
    return nearest


def _by_island(labels: np.ndarray, islands: int) -> list[np.ndarray]:
    """For each island 0 .. islands - 1, the positions (ascending) in ``labels`` (K,) that carry it."""
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(np.take(labels, order), np.arange(islands + 1))
    return [order[start:stop] for start, stop in zip(bounds[:-1], bounds[1:])]


def _frontier(texels: TexelMap, painted: np.ndarray) -> np.ndarray:
    """(M,) bool: painted texels with one of their 8 UV neighbours outside the painted texels of their island.

    painted : (M,) bool
    """
    # 0 = "not a painted texel"; float32 is exact up to 2^24 islands
    label = texels.to_image(torch.from_numpy(np.where(painted, texels.island.numpy() + 1, 0).astype(np.float32)))
    # a neighbour differs from the centre exactly when the 3 x 3 maximum or minimum does
    kernel = np.ones((3, 3), np.uint8)
    differs = ((cv2.dilate(label, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0) != label)
               | (cv2.erode(label, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0) != label))
    return painted & texels.gather(differs)


def _smooth_unpainted(texels: TexelMap, color: np.ndarray, painted: np.ndarray, iterations: int) -> np.ndarray:
    """Average each unpainted texel with its valid UV neighbours (3 x 3), a few times (masked diffusion).

    color : (M, C) float, changed in place and returned
    """
    free = np.flatnonzero(~painted)
    size = texels.size
    rows, cols = np.divmod(texels.index.numpy()[free], size)
    neighbours = []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            row, col = rows + dy, cols + dx
            inside = (row >= 0) & (row < size) & (col >= 0) & (col < size)
            neighbours.append(np.where(inside, texels.number_of(row * size + col), -1))
    neighbours = np.stack(neighbours, axis=1)  # (T, 9), -1 where invalid or outside the texture
    present = neighbours >= 0
    share = (1.0 / np.arange(1, 10)).astype(color.dtype)  # 1 / (neighbours present), the texel itself among them
    weights = present * np.take(share, present.sum(axis=1) - 1)[:, None]
    # iterate on a compact copy of the L texels involved, with the averaging as a sparse (T, L) matrix of
    # 9 entries a row (an absent neighbour weighs 0 on the texel itself), numbered in texel order
    columns = np.where(present, neighbours, free[:, None]).reshape(-1)
    used = np.zeros(len(color), dtype=bool)
    used[columns] = True
    involved = np.flatnonzero(used)
    local = np.full(len(color), -1, dtype=np.int64)
    local[involved] = np.arange(len(involved))
    with warnings.catch_warnings():  # torch calls its CSR tensors beta; their product with a dense matrix is
        warnings.simplefilter("ignore", UserWarning)  # 3x faster than scipy's on 2 cores, the same sums
        row_starts = torch.arange(0, 9 * len(free) + 1, 9)
        average = torch.sparse_csr_tensor(row_starts, torch.from_numpy(np.take(local, columns)),
                                          torch.from_numpy(weights.reshape(-1)),
                                          size=(len(free), len(involved)), check_invariants=False)
    values = torch.from_numpy(np.take(color, involved, axis=0))
    free_local = torch.from_numpy(np.take(local, free))
    for _ in range(iterations):
        values.index_copy_(0, free_local, average @ values)
    color[free] = values.index_select(0, free_local).numpy()
    return color


def pad_islands(image: np.ndarray, valid: np.ndarray, margin: int) -> np.ndarray:
    """Copy the nearest valid texel's colour into invalid texels up to ``margin`` texels away.

    image : (N, N, C) texture
    valid : (N, N) bool
    returns : a padded copy; valid texels are unchanged
    """
    return _padded(image, *padding_sources(valid, margin))


def pad_texture(texels: TexelMap, image: np.ndarray, margin: int) -> np.ndarray:
    """:func:`pad_islands` around ``texels``' valid texels, with the map's cached padding (the
    paint loop pads every view's paint)."""
    return _padded(image, *texels.padding(margin))


def _padded(image: np.ndarray, target: np.ndarray, source: np.ndarray) -> np.ndarray:
    out = image.copy()
    flat = out.reshape((-1,) + image.shape[2:])
    flat[target] = np.take(flat, source, axis=0)  # numpy's take gathers rows faster than an index
    return out
