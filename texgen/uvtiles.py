"""UV tiles: where a repeating sampler reads a face whose UVs lie outside the 0-1 square.

A face lying in tile [k, k + 1] samples the same texels as in [0, 1]. The tile of a face is the
floor of its corners' mean, so a face that straddles a tile edge a little stays whole. Numpy
only: the Blender add-on vendors this module (``blender_addon/build.py``), so texgen's own
scene merge and the add-on's atlas place faces the same way.
"""

from __future__ import annotations

import numpy as np


TILE_TOLERANCE = 0.1  # a corner this far past the edge of its face's tile still counts as inside it


def face_tiles(corners: np.ndarray) -> np.ndarray:
    """(F, 2) float64 whole-tile offset of each face. corners : (F, 3, 2) UVs of the face corners."""
    return np.floor((corners[:, 0] + corners[:, 1] + corners[:, 2]) / 3.0)  # the mean, 3x faster than .mean(axis=1)


def faces_across_tiles(corners: np.ndarray) -> np.ndarray:
    """(F,) bool faces that cross a tile border: a corner more than ``TILE_TOLERANCE`` outside the
    tile of the face (a tiled UDIM layout, or a face a repeating sampler would stretch over the
    texture's edge). corners : (F, 3, 2) UVs of the face corners."""
    shifted = corners - face_tiles(corners)[:, None]
    return ((shifted < -TILE_TOLERANCE) | (shifted > 1 + TILE_TOLERANCE)).any(axis=(1, 2))


def across_tiles_message(name: str, across: np.ndarray, face_uvs: np.ndarray, remedy: str) -> str:
    """The refusal of a mesh with faces across tile borders, worded alike by texgen and the add-on: how
    many, the first one and its UVs, and ``remedy``. across : (F,) bool :func:`faces_across_tiles`;
    face_uvs : (F, 3, 2) the UVs the mesh stores at the face corners."""
    faces = np.flatnonzero(across)
    count = f"{len(faces)} face has UVs" if len(faces) == 1 else f"{len(faces)} faces have UVs"
    return (f"{name}: {count} that cross a UV tile border (the first: face {int(faces[0])}, UVs "
            f"{np.round(face_uvs[faces[0]], 3).tolist()}). Tiled UDIM layouts are not supported yet: {remedy}")


def wrap_faces(uvs: np.ndarray, uv_faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shift every face by whole tiles into the 0-1 square.

    uvs : (T, 2) float, uv_faces : (F, 3) int
    returns : uvs (T', 2) float64 and uv_faces (F, 3) int64 of the shifted faces; a UV shared by
        faces in different tiles gets one copy per tile. Unchanged when every face is in [0, 1].
    """
    uvs, uv_faces = np.asarray(uvs, dtype=np.float64), np.asarray(uv_faces, dtype=np.int64)
    shift = face_tiles(uvs[uv_faces])
    if not shift.any():
        return uvs, uv_faces
    keys = np.concatenate([uv_faces.reshape(-1, 1), np.repeat(shift, 3, axis=0)], axis=1)  # (F * 3, 3)
    keys, inverse = np.unique(keys, axis=0, return_inverse=True)
    return uvs[keys[:, 0].astype(np.int64)] - keys[:, 1:], inverse.reshape(-1, 3)


def grid_size(count: int) -> int:
    """Tiles per side of the square grid that holds ``count`` UV squares."""
    return int(np.ceil(np.sqrt(count)))


def place_in_tile(uvs: np.ndarray, uv_faces: np.ndarray, index: int, tiles: int,
                  gutter: float | np.ndarray = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Move a mesh's UV square into tile ``index`` of a ``tiles`` x ``tiles`` grid (row by row from
    the top, v up), ``gutter`` of the tile left free on each side (a float, or (2,) for u and v).

    Faces are first wrapped into the 0-1 square (:func:`wrap_faces`); a corner a little past its
    edge is clipped to it, so it never reaches the neighbour's tile.
    returns : uvs (T', 2) float64 and uv_faces (F, 3) int64 as :func:`wrap_faces` gives them
    """
    wrapped, wrapped_faces = wrap_faces(uvs, uv_faces)
    tile = np.array([index % tiles, tiles - 1 - index // tiles], dtype=np.float64)
    return (tile + gutter + np.clip(wrapped, 0.0, 1.0) * (1 - 2 * gutter)) / tiles, wrapped_faces


__all__ = ["TILE_TOLERANCE", "face_tiles", "faces_across_tiles", "grid_size", "place_in_tile", "wrap_faces"]
