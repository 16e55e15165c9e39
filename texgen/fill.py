"""Fill texels no view saw, and pad UV islands.

Unseen texels take the colour of the nearest painted texel *on the surface in 3D* (a Voronoi
fill, as SyncMVD does), which crosses UV seams correctly; a few steps of masked diffusion
inside the UV layout then smooth the Voronoi cells. Padding copies each island's border
colour outwards so bilinear filtering and mipmaps never reach the background.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from scipy.spatial import cKDTree

from .texels import TexelMap

SMOOTH_ITERATIONS = 16


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
    source = np.flatnonzero(painted_np)
    target = np.flatnonzero(~painted_np)
    filled = color.numpy().copy()
    filled[target] = filled[source[nearest_on_surface(texels, source, target)]]
    if smooth_iterations:
        filled = _smooth_unpainted(texels, filled, painted_np, smooth_iterations)
    return torch.from_numpy(filled)


def nearest_on_surface(texels: TexelMap, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """For each target texel, the index into ``source`` of the nearest texel in 3D.

    Texels of the same UV island are preferred: across a UV seam there is often another
    surface (the skin around a cut, the lid of a box) whose colour does not belong here.
    source, target : (S,), (T,) indices of valid texels
    returns : (T,) int64 indices into ``source``
    """
    positions = texels.position.numpy().astype(np.float64)
    island = texels.island.numpy()
    # a fourth coordinate keeps islands far apart, so the nearest neighbour stays on the island
    separation = 1e3
    lifted = np.concatenate([positions, island[:, None] * separation], axis=1)
    _, nearest = cKDTree(lifted[source]).query(lifted[target], workers=-1)
    elsewhere = island[source[nearest]] != island[target]  # the island has no source texel at all
    if elsewhere.any():
        _, nearest[elsewhere] = cKDTree(positions[source]).query(positions[target[elsewhere]], workers=-1)
    return nearest


def _smooth_unpainted(texels: TexelMap, color: np.ndarray, painted: np.ndarray, iterations: int) -> np.ndarray:
    """Average each unpainted texel with its valid UV neighbours, a few times (masked diffusion)."""
    image = texels.to_image(color)  # invalid texels hold 0, so they add nothing to a neighbour's sum
    channels = image.shape[2]
    count = cv2.blur(texels.valid.astype(np.float32), (3, 3), borderType=cv2.BORDER_CONSTANT).reshape(-1)
    free = texels.index.numpy()[~painted]
    count = np.maximum(count[free], 1e-6)[:, None]
    flat = image.reshape(-1, channels)
    for _ in range(iterations):
        summed = cv2.blur(image, (3, 3), borderType=cv2.BORDER_CONSTANT).reshape(-1, channels)
        flat[free] = summed[free] / count
    return texels.gather(image)


def pad_islands(image: np.ndarray, valid: np.ndarray, margin: int) -> np.ndarray:
    """Copy the nearest valid texel's colour into invalid texels up to ``margin`` texels away.

    image : (N, N, C) texture
    valid : (N, N) bool
    returns : a padded copy; valid texels are unchanged
    """
    if margin <= 0 or valid.all() or not valid.any():
        return image.copy()
    distance, labels = cv2.distanceTransformWithLabels((~valid).astype(np.uint8), cv2.DIST_L2, 5,
                                                       labelType=cv2.DIST_LABEL_PIXEL)
    # labels number the zero (valid) pixels in row-major order, starting at 1
    source = np.flatnonzero(valid.reshape(-1))
    target = (~valid) & (distance <= margin)
    out = image.copy()
    flat = out.reshape((-1,) + image.shape[2:])
    flat[np.flatnonzero(target.reshape(-1))] = flat[source[labels[target] - 1]]
    return out
