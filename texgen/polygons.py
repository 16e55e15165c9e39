"""Triangles for the polygons of an OBJ file, and the polygons back from triangles.

A convex polygon becomes a fan (corners 0, k, k + 1), as most tools triangulate it. A fan of a
concave polygon would put triangles outside it, over one another (a hard-surface n-gon with a
notch, an L-shaped face), so those are cut by ear clipping (mapbox's earcut) in the polygon's own
plane instead.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

CONCAVE = 1e-9  # a turn the other way larger than this (relative to the edges and normal) is concave


def triangulate(points: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """(sum(sizes - 2), 3) int64: every polygon's triangles as its corner numbers (0 .. size - 1),
    polygon after polygon, wound like the polygon.

    points : (C, 3) float the corners' positions, polygon after polygon
    sizes : (P,) int corners of each polygon, >= 3
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    triangles = sizes - 2
    first = np.cumsum(triangles) - triangles
    starts = np.cumsum(sizes) - sizes
    k = np.arange(int(triangles.sum())) - np.repeat(first, triangles)
    local = np.stack([np.zeros_like(k), k + 1, k + 2], axis=1)
    uncut = []  # the sizes of the concave polygons earcut cannot cut: one warning names them all
    for polygon in np.flatnonzero(_concave(points, sizes)):
        cut = _ear_clip(points[starts[polygon]:starts[polygon] + sizes[polygon]])
        if cut is None:
            uncut.append(int(sizes[polygon]))
            continue
        local[first[polygon]:first[polygon] + triangles[polygon]] = cut
    if uncut:
        log.warning("earcut cannot cut %d concave polygon%s of %s corners (do they cross themselves?); "
                    "they are triangulated as fans", len(uncut), "s" * (len(uncut) != 1),
                    "/".join(str(size) for size in sorted(set(uncut))))
    return local


def corner_rows(local: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """(F, 3) int64 the row of each triangle corner in the polygons' corner list (polygon after polygon).

    local : (F, 3) :func:`triangulate`'s corner numbers; sizes : (P,) with sum(sizes - 2) = F
    """
    return np.repeat(np.cumsum(sizes) - sizes, sizes - 2)[:, None] + local


def polygon_faces(triangle_values: np.ndarray, local: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The faces to write back: each polygon whose triangles agree on its corners as itself, and the
    triangles of the others (those a new UV layout cut along a diagonal), in polygon order.

    triangle_values : (F, 3, ...) per triangle corner (its position and UV index, say)
    local : (F, 3) :func:`triangulate`'s corner numbers; sizes : (P,) with sum(sizes - 2) = F
    returns : corners (C, ...) the value of each face corner, face after face; face sizes (P',)
    """
    count = len(sizes)
    owner = np.repeat(np.arange(count), sizes - 2)  # the polygon of each triangle
    slot = corner_rows(local, sizes).reshape(-1)
    values = triangle_values.reshape((-1,) + triangle_values.shape[2:])
    table = np.zeros((int(sizes.sum()),) + values.shape[1:], dtype=values.dtype)
    table[slot] = values
    covered = np.zeros(len(table), dtype=bool)
    covered[slot] = True
    agree = (table[slot] == values).reshape(len(values), -1).all(axis=1).reshape(-1, 3).all(axis=1)  # (F,)
    whole = (np.bincount(owner, weights=~agree, minlength=count) == 0) \
        & (np.bincount(np.repeat(np.arange(count), sizes), weights=~covered, minlength=count) == 0)
    split = ~whole[owner]  # triangles written as themselves
    face_polygon = np.concatenate([np.flatnonzero(whole), owner[split]])
    face_sizes = np.concatenate([sizes[whole], np.full(int(split.sum()), 3, dtype=sizes.dtype)])
    corners = np.concatenate([table[np.repeat(whole, sizes)], triangle_values[split].reshape((-1,) + values.shape[1:])])
    order = np.argsort(face_polygon, kind="stable")
    first = np.cumsum(face_sizes) - face_sizes
    ordered_sizes = face_sizes[order]
    ordered_first = np.cumsum(ordered_sizes) - ordered_sizes
    take = np.repeat(first[order] - ordered_first, ordered_sizes) + np.arange(int(ordered_sizes.sum()))
    return corners[take], ordered_sizes


def _concave(points: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """(P,) bool polygons with a corner that turns against the polygon's (Newell) normal.

    Triangles never do: only the corners of larger polygons are tested (a scan of triangles tests none).
    """
    concave = np.zeros(len(sizes), dtype=bool)
    larger = sizes > 3
    if larger.any():
        concave[larger] = _turns_against(points[np.repeat(larger, sizes)], sizes[larger])
    return concave


def _turns_against(points: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """(P,) bool: :func:`_concave` of polygons of more than 3 corners."""
    count = len(points)
    starts = np.cumsum(sizes) - sizes
    following = np.arange(1, count + 1)
    following[starts + sizes - 1] = starts
    preceding = np.arange(-1, count - 1)
    preceding[starts] = starts + sizes - 1
    owner = np.repeat(np.arange(len(sizes)), sizes)
    normal = np.add.reduceat(np.cross(points, points[following]), starts, axis=0)  # (P, 3)
    before, after = points - points[preceding], points[following] - points
    turn = np.einsum("ij,ij->i", np.cross(before, after), normal[owner])
    scale = np.linalg.norm(before, axis=1) * np.linalg.norm(after, axis=1) * np.linalg.norm(normal, axis=1)[owner]
    # a repeated corner (an edge of length 0) hides the turn at it: clip those polygons too
    against = (turn < -CONCAVE * scale) | (scale == 0)
    return np.logical_or.reduceat(against, starts)


def _ear_clip(corners: np.ndarray) -> np.ndarray | None:
    """(n - 2, 3) int64 triangles of one polygon (n, 3) in its plane, wound like it; None when earcut
    cannot cut it into n - 2 triangles (it intersects itself in that plane, say)."""
    import mapbox_earcut

    normal = np.cross(corners, np.roll(corners, -1, axis=0)).sum(axis=0)
    if not np.linalg.norm(normal) > 0:  # no plane: a bow tie whose halves cancel, or a line
        return None
    normal /= np.linalg.norm(normal)
    u = np.cross(normal, [1.0, 0.0, 0.0] if abs(normal[0]) < 0.9 else [0.0, 1.0, 0.0])
    u /= np.linalg.norm(u)
    plane = (corners - corners[0]) @ np.stack([u, np.cross(normal, u)], axis=1)  # (u, v, normal) right-handed
    cut = mapbox_earcut.triangulate_float64(plane, np.array([len(corners)], dtype=np.uint32))
    cut = cut.astype(np.int64).reshape(-1, 3)
    # earcut drops repeated corners: each gets a zero-area triangle with its neighbours, so that
    # the polygon keeps n - 2 triangles and every corner (the OBJ export writes them all back)
    dropped = np.setdiff1d(np.arange(len(corners)), cut)
    following = (dropped + 1) % len(corners)
    repeated = ((corners[dropped] == corners[dropped - 1]).all(axis=1)
                | (corners[dropped] == corners[following]).all(axis=1))
    if len(cut) + len(dropped) != len(corners) - 2 or not repeated.all():
        return None
    cut = np.concatenate([cut, np.stack([dropped - 1, dropped, following], axis=1)])
    a, b, c = plane[cut[:, 0]], plane[cut[:, 1]], plane[cut[:, 2]]
    clockwise = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]) < 0
    cut[clockwise] = cut[clockwise][:, [0, 2, 1]]  # the polygon runs counter-clockwise in its plane
    return cut
