"""Mesh and image arrays as the add-on sends them, and the conversions at Blender's edge.

Frames: Blender is Z-up with a model's front facing -Y; texgen (glTF) is Y-up with the front
facing +Z, so ``(x, y, z)_blender -> (x, z, -y)_texgen`` and back ``(x, y, z) -> (x, -z, y)``.

Images: Blender's ``Image.pixels`` is float RGBA, bottom row first; a texgen texture is
``(N, N, 3) uint8``, top row first (image row 0 is v = 1). Both use UVs with v pointing up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..vendor.uvtiles import across_tiles_message, faces_across_tiles, grid_size, place_in_tile


@dataclass
class MeshArrays:
    """A triangle mesh with per-corner UVs (OBJ style), in texgen's frame.

    positions : (V, 3) float64
    faces : (F, 3) int64
    uvs : (T, 2) float64, welded: corners that share a vertex and a UV share an index, so an
        edge is a UV seam exactly when its two faces use different UV indices on it
    uv_faces : (F, 3) int64
    normals : optional (K, 3) float64 shading normals (Blender's corner normals, split at sharp edges)
    normal_faces : optional (F, 3) int64 indexing ``normals`` per face corner
    """

    name: str
    positions: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    uv_faces: np.ndarray
    normals: Optional[np.ndarray] = None
    normal_faces: Optional[np.ndarray] = None


def blender_to_texgen(points: np.ndarray) -> np.ndarray:
    """(N, 3) Blender Z-up coordinates -> texgen Y-up: (x, y, z) -> (x, z, -y)."""
    points = np.asarray(points, dtype=np.float64)
    return np.stack([points[:, 0], points[:, 2], -points[:, 1]], axis=1)


def texgen_to_blender(points: np.ndarray) -> np.ndarray:
    """(N, 3) texgen Y-up coordinates -> Blender Z-up: (x, y, z) -> (x, -z, y)."""
    points = np.asarray(points, dtype=np.float64)
    return np.stack([points[:, 0], -points[:, 2], points[:, 1]], axis=1)


def from_loop_triangles(name: str, vertices: np.ndarray, tri_vertices: np.ndarray, tri_loops: np.ndarray,
                        loop_uvs: np.ndarray, matrix: Optional[np.ndarray] = None,
                        loop_normals: Optional[np.ndarray] = None) -> MeshArrays:
    """Build :class:`MeshArrays` from what ``Mesh.loop_triangles`` and a UV layer hold.

    vertices : (V, 3) Blender coordinates; matrix : optional (4, 4) transform applied first
    tri_vertices, tri_loops : (F, 3) vertex and loop (face corner) indices of each triangle
    loop_uvs : (L, 2) UV of each loop of the original polygons
    loop_normals : optional (L, 3) shading normal of each loop (``Mesh.corner_normals``)
    """
    vertices = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    if matrix is not None:
        matrix = np.asarray(matrix, dtype=np.float64)
        vertices = vertices @ matrix[:3, :3].T + matrix[:3, 3]
    tri_vertices = np.asarray(tri_vertices, dtype=np.int64).reshape(-1, 3)
    tri_loops = np.asarray(tri_loops, dtype=np.int64).reshape(-1, 3)
    loop_uvs = np.asarray(loop_uvs, dtype=np.float64).reshape(-1, 2)
    uvs, uv_faces = weld_corner_uvs(tri_vertices, loop_uvs[tri_loops])
    normals = None
    if loop_normals is not None:
        normals = np.asarray(loop_normals, dtype=np.float64).reshape(-1, 3)
        if matrix is not None:  # normals transform by the inverse transpose (non-uniform scale)
            normals = normals @ np.linalg.inv(matrix[:3, :3])
        normals = blender_to_texgen(normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-20))
    return MeshArrays(name, blender_to_texgen(vertices), tri_vertices, uvs, uv_faces, normals,
                      None if normals is None else tri_loops)


def weld_corner_uvs(faces: np.ndarray, corner_uvs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge corners with the same vertex and exactly the same UV into one UV index.

    faces : (F, 3) vertex indices; corner_uvs : (F, 3, 2) -> uvs (T, 2), uv_faces (F, 3)
    """
    corner_uvs = np.ascontiguousarray(corner_uvs, dtype=np.float64).reshape(-1, 2)
    keys = np.empty((len(corner_uvs), 3), dtype=np.int64)
    keys[:, 0] = np.asarray(faces, dtype=np.int64).reshape(-1)
    keys[:, 1:] = (corner_uvs + 0.0).view(np.int64)  # + 0.0 folds -0.0 into 0.0 before comparing bits
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)  # number UVs in first-seen order, so output is stable
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return corner_uvs[first[order]], rank[inverse.reshape(-1)].reshape(-1, 3)


@dataclass(frozen=True)
class AtlasLayout:
    """How :func:`combine` tiled several meshes' UV squares into one atlas: mesh ``i`` owns the
    square at column ``i % tiles`` and row ``i // tiles`` (rows counted from the image's top)."""

    names: tuple[str, ...]
    tiles: int


def combine(meshes: Sequence[MeshArrays], name: str = "scene") -> tuple[MeshArrays, AtlasLayout]:
    """Merge meshes into one scene whose UV squares sit side by side.

    Each mesh's square is placed as texgen's scene merge places it (``uvtiles.place_in_tile``):
    faces wrapped where a repeating sampler reads them, corners a little past the square's edge
    clipped, so a mesh never paints into its neighbour's square. Unlike texgen's merge there is no
    gutter between squares: :func:`split_atlas` hands each mesh
    its square at the full atlas resolution, lined up with the mesh's own UVs.

    Raises ValueError naming the mesh when one of its faces crosses a UV tile border (a tiled UDIM
    layout): clipped into its square, the face would be painted squeezed, as texgen refuses it.
    """
    for mesh in meshes:
        across = faces_across_tiles(mesh.uvs[mesh.uv_faces])
        if across.any():
            raise ValueError(across_tiles_message(mesh.name, across, mesh.uvs[mesh.uv_faces],
                                                  "pack its UVs into the 0-1 square"))
    tiles = grid_size(len(meshes))
    positions, faces, uvs, uv_faces = [], [], [], []
    vertex_offset = uv_offset = 0
    for index, mesh in enumerate(meshes):
        positions.append(mesh.positions)
        faces.append(mesh.faces + vertex_offset)
        vertex_offset += len(mesh.positions)
        placed, placed_faces = place_in_tile(mesh.uvs, mesh.uv_faces, index, tiles)
        uvs.append(placed)
        uv_faces.append(placed_faces + uv_offset)
        uv_offset += len(placed)
    merged = MeshArrays(name, np.concatenate(positions), np.concatenate(faces), np.concatenate(uvs),
                        np.concatenate(uv_faces))
    return merged, AtlasLayout(tuple(m.name for m in meshes), tiles)


def split_atlas(texture: np.ndarray, layout: AtlasLayout) -> dict[str, np.ndarray]:
    """Cut an atlas painted for :func:`combine`'s scene back into one texture per mesh name."""
    size = texture.shape[0] // layout.tiles
    return {name: np.ascontiguousarray(texture[(i // layout.tiles) * size:(i // layout.tiles + 1) * size,
                                               (i % layout.tiles) * size:(i % layout.tiles + 1) * size])
            for i, name in enumerate(layout.names)}


def join_atlas(textures: Sequence[np.ndarray], layout: AtlasLayout, size: int) -> np.ndarray:
    """The atlas that :func:`split_atlas` cuts: each mesh's texture (H, W, 3+) uint8, in ``layout``
    order, resampled to ``size`` x ``size`` (nearest texel) and put in its square."""
    atlas = np.zeros((size * layout.tiles, size * layout.tiles, 3), np.uint8)
    centres = (np.arange(size) + 0.5) / size
    for index, texture in enumerate(textures):
        rows = np.minimum((centres * texture.shape[0]).astype(np.int64), texture.shape[0] - 1)
        cols = np.minimum((centres * texture.shape[1]).astype(np.int64), texture.shape[1] - 1)
        top, left = (index // layout.tiles) * size, (index % layout.tiles) * size
        atlas[top:top + size, left:left + size] = texture[rows[:, None], cols[None, :], :3]
    return atlas


def texture_to_pixels(texture: np.ndarray) -> np.ndarray:
    """(H, W, 3|4) uint8, top row first -> flat float32 RGBA, bottom row first (``Image.pixels``)."""
    texture = np.asarray(texture)
    height, width = texture.shape[:2]
    rgba = np.ones((height, width, 4), dtype=np.float32)
    rgba[:, :, :3] = texture[::-1, :, :3] / np.float32(255.0)
    if texture.shape[2] == 4:
        rgba[:, :, 3] = texture[::-1, :, 3] / np.float32(255.0)
    return rgba.reshape(-1)


def pixels_to_texture(pixels: np.ndarray, width: int, height: int, channels: int = 4) -> np.ndarray:
    """Flat float ``Image.pixels`` (bottom row first) -> (H, W, 3) uint8, top row first."""
    image = np.asarray(pixels, dtype=np.float32).reshape(height, width, channels)[::-1]
    rgb = image[:, :, :3] if channels >= 3 else np.repeat(image[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8))
