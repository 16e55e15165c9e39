"""Mesh input: load through trimesh, validate, keep the user's UVs and topology.

Conventions
-----------
* ``positions`` (V, 3) float64 and ``faces`` (F, 3) int64 are the user's own vertices, in the
  user's own frame and units. trimesh splits OBJ and PLY vertices at UV seams; they are joined
  back (see ``_obj_own_lists``, ``_ply_own_lists``), so the exported mesh keeps the original vertex
  count. OBJ and PLY polygons are kept too (``polygons``), for the OBJ export.
* UVs are per face corner, as in OBJ: ``uvs`` (T, 2) float64 in [0, 1] with v pointing up
  (OpenGL/OBJ/Blender convention; image row 0 is v = 1) and ``uv_faces`` (F, 3) int64 indexing
  ``uvs``. A UV seam is an edge whose two faces use different UV indices.
* Rendering uses the *unit frame*: ``(positions - center) * scale`` fits in the unit sphere.
  The world axes are glTF's (+Y up, the model faces +Z); Blender's +Z-up data is converted at
  the add-on's edge.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple, Optional, Sequence, Union

import numpy as np

from .errors import MeshError
from .gltf_json import (dequantized_glb, glb_parts, normalized_attributes, plain_integer_uvs, primitives, read_json,
                        self_contained_glb, stored_as_integers, with_attribute_renamed)
from .material import Material, base_colour_mapping, on_plain_uvs
from .polygons import corner_rows, triangulate
from .uvtiles import across_tiles_message, face_tiles, faces_across_tiles, grid_size, place_in_tile

log = logging.getLogger(__name__)

MESH_SUFFIXES = (".obj", ".glb", ".gltf", ".ply", ".stl", ".off")
# a merged scene's reference texture, its objects' textures side by side, is at most this many pixels wide
MERGED_TEXTURE_SIZE = 8192
# A merged object's tile keeps a gutter of at least 1/TILE_GUTTER of the tile on each side, filled with its
# texture's edge colours, so bilinear filtering and mipmaps at a tile's edge do not read the neighbour's.
# At 1/64, whatever size a texture for the merged UVs is baked at, the gutter is a texel or more down to
# the mip level where a tile is 64 texels wide; it costs 6% of the tile's area.
TILE_GUTTER = 64


@dataclass(frozen=True)
class _CornerTable:
    """How :meth:`Mesh.validate` names a per-corner table: its values' and indices' fields, the
    values' row count letter and width, and its values in words."""

    values: str
    indices: str
    rows: str
    width: int
    singular: str
    plural: str


SECOND_UVS = "_TEXGEN_TEXCOORD_1"  # the name under which trimesh loads a glTF file's TEXCOORD_1 (a custom attribute)
UV_TABLE = _CornerTable("uvs", "uv_faces", "T", 2, "UV", "UVs")
NORMAL_TABLE = _CornerTable("normals", "normal_faces", "N", 3, "normal", "normals")
UV2_TABLE = _CornerTable("uvs2", "uv2_faces", "T2", 2, "second-set UV", "second-set UVs")


@dataclass
class Mesh:
    """A triangle mesh with per-corner UVs and an optional reference texture.

    positions : (V, 3) float64, user frame
    faces : (F, 3) int64
    uvs : (T, 2) float64 or None
    uv_faces : (F, 3) int64 or None
    texture : (H, W, 3) uint8 base-colour image the UVs map, or None
    texture_alpha : (H, W) uint8 that image's alpha (opacity, cut-outs), which the exports write back
        with the new colour; None when the image is opaque
    notes : what loading did to the input (unwrapped, welded, merged, skipped faces...)
    polygons : (P,) int64 corner count of each face of an OBJ file that had polygons, whose
        triangles follow one another in ``faces``; the OBJ export writes them back. None for a
        triangle mesh.
    polygon_corners : (F, 3) int64 which corner of its polygon (0 .. size - 1) each triangle corner
        is: 0, k, k + 1 for a fan (see :mod:`texgen.polygons`). Set with ``polygons``.
    normals : (N, 3) float64 the file's own shading normals (OBJ ``vn``, glTF ``NORMAL``, PLY
        ``nx ny nz``), which the exports write back; None when the file has none (the exports then
        write smooth vertex normals). Rendering and baking use the geometric normals.
    normal_faces : (F, 3) int64 indexing ``normals`` per face corner
    material : the glTF PBR material the file gave the mesh (its maps follow ``uvs``, or ``uvs2``),
        which the GLB export writes back around the new base colour map; None for other files and
        merged scenes
    uvs2 : (T2, 2) float64 a glTF file's second UV set (TEXCOORD_1: a lightmap layout, say), which
        the GLB export writes back as it is; None when there is none. texgen paints ``uvs``.
    uv2_faces : (F, 3) int64 indexing ``uvs2`` per face corner
    source_glb : the glTF file as one GLB (:func:`texgen.gltf_json.self_contained_glb`) when the mesh is
        all of its triangles with the file's own UVs (TEXCOORD_0): the GLB export then writes that
        file with the new base colour map, keeping its nodes, skins, animations and the rest
        (:func:`texgen.gltf_json.with_base_colour_map`). None otherwise, and once the UVs are replaced.
    unwrapped : texgen made ``uvs`` (xatlas, :func:`apply_unwrap`): no image of the file follows them
    """

    positions: np.ndarray
    faces: np.ndarray
    uvs: Optional[np.ndarray] = None
    uv_faces: Optional[np.ndarray] = None
    texture: Optional[np.ndarray] = None
    name: str = "mesh"
    notes: list[str] = field(default_factory=list)
    polygons: Optional[np.ndarray] = None
    polygon_corners: Optional[np.ndarray] = None
    normals: Optional[np.ndarray] = None
    normal_faces: Optional[np.ndarray] = None
    material: Optional[Material] = None
    texture_alpha: Optional[np.ndarray] = None
    uvs2: Optional[np.ndarray] = None
    uv2_faces: Optional[np.ndarray] = None
    source_glb: Optional[bytes] = field(default=None, repr=False)
    unwrapped: bool = False

    @classmethod
    def from_arrays(cls, positions: np.ndarray, faces: np.ndarray, uvs: Optional[np.ndarray] = None,
                    uv_faces: Optional[np.ndarray] = None, texture: Optional[np.ndarray] = None,
                    name: str = "mesh", normals: Optional[np.ndarray] = None,
                    normal_faces: Optional[np.ndarray] = None) -> "Mesh":
        """Build and validate a mesh from plain arrays (the wire and the add-on use this).

        When ``uvs`` is given without ``uv_faces``, it must be per-vertex (V, 2) or
        per-corner (F * 3, 2). ``normals`` (K, 3) go with ``normal_faces`` (F, 3).
        """
        positions = np.asarray(positions, dtype=np.float64)
        faces = np.asarray(faces)
        if uvs is not None:
            uvs = np.asarray(uvs, dtype=np.float64)
            if uv_faces is None:
                if len(uvs) == len(positions):
                    uv_faces = faces
                elif len(uvs) == 3 * len(faces):
                    uv_faces = np.arange(3 * len(faces)).reshape(-1, 3)
                else:
                    raise MeshError(f"{name}: uvs has {len(uvs)} rows; expected one per vertex "
                                    f"({len(positions)}) or one per face corner ({3 * len(faces)})")
        mesh = cls(positions, faces, uvs, None if uv_faces is None else np.asarray(uv_faces), texture, name,
                   normals=None if normals is None else np.asarray(normals, dtype=np.float64),
                   normal_faces=None if normal_faces is None else np.asarray(normal_faces))
        mesh.validate()
        return mesh

    # ------------------------------------------------------------------ validation
    def validate(self, warn_degenerate: bool = True) -> None:
        """Raise MeshError naming the first problem; normalise dtypes in place. Degenerate faces are
        kept, with a note and, where ``warn_degenerate``, a logged warning."""
        name = self.name
        if self.positions.ndim != 2 or self.positions.shape[1] != 3:
            raise MeshError(f"{name}: positions must be (V, 3), got {self.positions.shape}")
        if self.faces.size == 0:
            raise MeshError(f"{name}: the mesh has no faces (a point cloud or an empty file?)")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise MeshError(f"{name}: faces must be triangles (F, 3), got {self.faces.shape}")
        if not np.issubdtype(self.faces.dtype, np.integer):
            raise MeshError(f"{name}: face indices must be integers, got {self.faces.dtype}")
        self.faces = self.faces.astype(np.int64)
        bad = ~np.isfinite(self.positions).all(axis=1)
        if bad.any():
            raise MeshError(f"{name}: {int(bad.sum())} vertices have NaN or infinite coordinates "
                            f"(first: vertex {int(np.flatnonzero(bad)[0])})")
        _check_index_range(self.faces, len(self.positions), f"{name}: face", "vertices")
        if self.uvs is not None:
            self.uv_faces = self._corner_indices(self.uvs, self.uv_faces, UV_TABLE)
            across = faces_across_tiles(self.corner_uvs())
            if across.any():
                raise MeshError(across_tiles_message(name, across, self.uvs[self.uv_faces], "pack the UVs into the "
                                                     "0-1 square, or use --unwrap always to make a new layout"))
            if self.uv_tiles_wrapped:
                note = ("UVs outside [0, 1] wrap into the 0-1 square (glTF's repeat sampler), so several "
                        "faces share texels; the exported UVs are unchanged")
                if note not in self.notes:
                    self.notes.append(note)
        if self.texture is not None:
            self.texture = _as_rgb8(self.texture, name)
        if self.texture_alpha is not None and (self.texture is None or self.texture_alpha.dtype != np.uint8
                                               or self.texture_alpha.shape != self.texture.shape[:2]):
            raise MeshError(f"{name}: texture_alpha must be (H, W) uint8 like the texture")
        if self.normals is not None:
            self.normal_faces = self._corner_indices(self.normals, self.normal_faces, NORMAL_TABLE)
        if self.uvs2 is not None:
            self.uv2_faces = self._corner_indices(self.uvs2, self.uv2_faces, UV2_TABLE)
        degenerate = int((~self.face_ok).sum())
        if degenerate:
            note = (f"{degenerate} degenerate faces (repeated vertices or zero area) are skipped in "
                    "rendering and baking and kept in the export")
            if warn_degenerate:
                log.warning("%s: %s", name, note)
            if note not in self.notes:
                self.notes.append(note)

    def _corner_indices(self, values: np.ndarray, indices: Optional[np.ndarray], table: _CornerTable) -> np.ndarray:
        """Check a per-corner table: ``values`` (K, C) indexed by ``indices`` (F, 3) per face corner;
        returns the indices as int64."""
        if indices is None or indices.shape != self.faces.shape:
            raise MeshError(f"{self.name}: {table.indices} must be (F, 3) like faces")
        if values.ndim != 2 or values.shape[1] != table.width:
            raise MeshError(f"{self.name}: {table.values} must be ({table.rows}, {table.width}), got {values.shape}")
        if not np.isfinite(values).all():
            raise MeshError(f"{self.name}: {table.plural} contain NaN or infinite values")
        indices = indices.astype(np.int64)
        _check_index_range(indices, len(values), f"{self.name}: {table.singular} face", table.plural)
        return indices

    # ------------------------------------------------------------------ derived data
    @property
    def has_uvs(self) -> bool:
        return self.uvs is not None

    @cached_property
    def face_ok(self) -> np.ndarray:
        """(F,) bool: faces with three distinct vertices and a non-zero area."""
        f = self.faces
        distinct = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
        area2 = np.linalg.norm(self.face_cross, axis=1)
        scale = max(float(np.ptp(self.positions, axis=0).max()), 1e-30)
        return distinct & (area2 > 1e-12 * scale * scale)

    @cached_property
    def face_cross(self) -> np.ndarray:
        """(F, 3) cross product of two edges; its length is twice the face area."""
        tri = np.take(self.positions, self.faces, axis=0)  # take: 3x faster than fancy indexing
        u, v = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
        cross = np.empty_like(u)  # written a component at a time: the same values as np.cross, 1.3x faster
        cross[:, 0] = u[:, 1] * v[:, 2] - u[:, 2] * v[:, 1]
        cross[:, 1] = u[:, 2] * v[:, 0] - u[:, 0] * v[:, 2]
        cross[:, 2] = u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]
        return cross

    @cached_property
    def face_normals(self) -> np.ndarray:
        """(F, 3) float32 unit geometric normal of each face (zero for zero-area faces)."""
        length = np.linalg.norm(self.face_cross, axis=1, keepdims=True)
        return (self.face_cross / np.maximum(length, 1e-300)).astype(np.float32)

    @cached_property
    def closed_outward(self) -> bool:
        """True when every part of the surface is closed and wound counter-clockwise seen from outside.

        Then a ray from outside the mesh meets a front face first, so renderers may skip back
        faces. Closed: each (welded) edge of the faces that pass ``face_ok`` joins exactly two
        faces that run along it in opposite directions. Outward: each connected part encloses a
        positive volume (a part wound inside out, or an inner shell, makes this False).
        """
        import scipy.sparse
        import scipy.sparse.csgraph

        ok = np.flatnonzero(self.face_ok)
        faces = self.welded_faces[ok]
        if len(faces) == 0:
            return False
        count = int(faces.max()) + 1
        start, end = faces.reshape(-1), faces[:, [1, 2, 0]].reshape(-1)
        forward = np.sort(start * count + end)
        if (forward[1:] == forward[:-1]).any() or not np.array_equal(forward, np.sort(end * count + start)):
            return False
        graph = scipy.sparse.coo_matrix((np.ones(len(start)), (start, end)), shape=(count, count))
        parts, label = scipy.sparse.csgraph.connected_components(graph, directed=False)
        # six times each part's signed volume: the sum over its faces of p0 . (p1 - p0) x (p2 - p0)
        volume = np.einsum("fk,fk->f", self.positions[self.faces[ok, 0]] - self.center, self.face_cross[ok])
        part = label[faces[:, 0]]
        has_faces = np.bincount(part, minlength=parts) > 0  # loose vertices are parts of their own
        return bool((np.bincount(part, volume, minlength=parts)[has_faces] > 0).all())

    @cached_property
    def used_positions(self) -> np.ndarray:
        """(U, 3) the positions that some face uses (loose vertices do not count for the frame)."""
        used = np.zeros(len(self.positions), dtype=bool)
        used[self.faces.reshape(-1)] = True
        return self.positions[used]

    @cached_property
    def center(self) -> np.ndarray:
        """(3,) centre of the bounding box, user frame."""
        used = self.used_positions
        return (used.min(axis=0) + used.max(axis=0)) / 2

    @cached_property
    def scale(self) -> float:
        """Factor that maps the user frame into the unit sphere around ``center``."""
        radius = float(np.linalg.norm(self.used_positions - self.center, axis=1).max())
        if radius <= 0:
            raise MeshError(f"{self.name}: all vertices coincide; the mesh has no extent")
        return 1.0 / radius

    @cached_property
    def unit_positions(self) -> np.ndarray:
        """(V, 3) float32 positions in the unit frame used for rendering."""
        return ((self.positions - self.center) * self.scale).astype(np.float32)

    @cached_property
    def vertex_normals(self) -> np.ndarray:
        """(V, 3) float32 area-weighted vertex normals (unit frame = user frame directions)."""
        normals = np.zeros_like(self.positions)
        for corner in range(3):
            np.add.at(normals, self.faces[:, corner], self.face_cross)
        length = np.linalg.norm(normals, axis=1, keepdims=True)
        return (normals / np.maximum(length, 1e-20)).astype(np.float32)

    @cached_property
    def welded_faces(self) -> np.ndarray:
        """(F, 3) int64 faces re-indexed so that vertices at the same position share an index.

        Adjacency across UV seams (seam detection, 3D neighbours) is computed on these.
        """
        return np.take(row_groups(self.positions), self.faces)

    @cached_property
    def face_islands(self) -> np.ndarray:
        """(F,) int UV island of every face: faces that share a corner, the same (welded) vertex
        with the same UV, belong to one island, whether or not the file shares the UV's index."""
        import scipy.sparse
        import scipy.sparse.csgraph

        self.require_uvs()
        count = len(self.uv_faces)
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        # a corner is a (welded vertex, UV value) pair; UV values are numbered on the UV table, unless
        # some faces are shifted by whole tiles (corner_uvs), which may give different UVs one value
        if self.uv_tiles_wrapped:
            uv = self.corner_uvs().reshape(-1, 2)
            corner = row_groups(np.column_stack([self.welded_faces.reshape(-1), uv[:, 0], uv[:, 1]]))
        else:
            value = np.take(row_groups(self.uvs), self.uv_faces.reshape(-1))
            corner = np.unique(self.welded_faces.reshape(-1) * (value.max() + 1) + value, return_inverse=True)[1]
        corner = corner.reshape(-1, 3)
        # corners as a graph, each face linking its first corner to the other two
        graph = scipy.sparse.coo_matrix((np.ones(2 * count), (np.repeat(corner[:, 0], 2), corner[:, 1:].reshape(-1))),
                                        shape=(corner.max() + 1,) * 2)
        _, labels = scipy.sparse.csgraph.connected_components(graph, directed=False)
        # islands numbered in the order of their first face
        islands, first, face_island = np.unique(np.take(labels, corner[:, 0]), return_index=True, return_inverse=True)
        number = np.empty(len(islands), dtype=np.int64)
        number[np.argsort(first)] = np.arange(len(islands))
        return np.take(number, face_island)

    def corner_uvs(self) -> np.ndarray:
        """(F, 3, 2) UV of every face corner, each face shifted by whole tiles into the 0-1 square
        (read-only, made once).

        A face lying in tile [k, k + 1] samples the same texels as in [0, 1] under a repeating
        sampler, so baking and rendering use these; the stored ``uvs`` stay as the user gave them.
        """
        return self._wrapped_corners[0]

    @property
    def uv_tiles_wrapped(self) -> bool:
        """True when some faces lie outside the 0-1 square and are wrapped into it."""
        return self._wrapped_corners[1]

    @cached_property
    def _wrapped_corners(self) -> tuple[np.ndarray, bool]:
        """:meth:`corner_uvs` and :attr:`uv_tiles_wrapped`."""
        self.require_uvs()
        corners = np.take(self.uvs, self.uv_faces, axis=0)  # take: up to 9x faster than fancy indexing
        tiles = face_tiles(corners)
        wrapped = bool(tiles.any())
        if wrapped:
            corners -= tiles[:, None]
        corners.setflags(write=False)
        return corners, wrapped

    def require_uvs(self) -> None:
        if self.uvs is None:
            raise MeshError(f"{self.name}: the mesh has no UV map; unwrap it first (--unwrap auto)")


def row_groups(rows: np.ndarray) -> np.ndarray:
    """(N,) int64 number of each distinct row of ``rows`` (N, K), in sorted order: equal rows get
    one number (-0.0 equals 0.0), as ``np.unique(rows, axis=0, return_inverse=True)`` gives them,
    5x faster (one lexsort of the columns instead of a sort of void records).
    """
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort(rows.T[::-1])
    ordered = np.take(rows, order, axis=0)  # take: 3x faster than fancy indexing
    change = np.concatenate([[False], (ordered[1:] != ordered[:-1]).any(axis=1)])
    groups = np.empty(len(rows), dtype=np.int64)
    groups[order] = np.cumsum(change)
    return groups


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """The distinct values (K,) of an integer array (N,), ascending: ``np.unique(values)``, which in
    numpy 2.4 takes a hash table 40x slower than this sort (4.6 s for 3M values, this 60 ms)."""
    ordered = np.sort(values)
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]] if len(ordered) else ordered


def _check_index_range(indices: np.ndarray, count: int, what: str, target: str) -> None:
    bad = (indices < 0) | (indices >= count)
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        raise MeshError(f"{what} indices out of range: face {row} refers to {indices[row].tolist()}, "
                        f"but there are only {count} {target}")


def _as_rgb8(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise MeshError(f"{name}: texture must be (H, W, 3) or (H, W, 4), got {image.shape}")
    if image.dtype != np.uint8:
        if np.issubdtype(image.dtype, np.floating):
            image = np.clip(np.round(image * 255.0), 0, 255)
        image = image.astype(np.uint8)
    return np.ascontiguousarray(image[:, :, :3])


# ---------------------------------------------------------------------- loading

MTL_MAPS = re.compile(rb"^\s*(map_\w+|bump|disp|decal|norm|refl)\s+(.+?)\s*$", re.MULTILINE)


def file_resolver(path: Path) -> Any:
    """trimesh's resolver for the files ``path`` reads, as 3D tools write them: anywhere relative to its
    folder (``map_Kd ../textures/a.png``; trimesh 5 keeps to the folder and below), and a map line's
    file after its options (``map_Kd -s 1 1 1 a.png``, which trimesh asks for whole)."""
    return _resolver_type()(str(path), allow_anywhere=True)


@cache
def _resolver_type() -> type:
    import trimesh

    class FileResolver(trimesh.resolvers.FilePathResolver):
        def get(self, name: str) -> bytes:
            try:
                return super().get(name)
            except FileNotFoundError:
                words = name.split()
                if len(words) < 2:
                    raise
                return super().get(words[-1])

    return FileResolver


def companion_files(path: Path) -> list[str]:
    """The files a mesh file reads besides itself, as written in it (relative to its folder): an
    OBJ's material libraries and the maps they name (:func:`_obj_references`), a .gltf's buffers and
    images that are not ``data:`` URIs. Those that do not exist are left out; other formats read none."""
    from urllib.parse import unquote

    path = Path(path)
    suffix = path.suffix.lower()
    names: list[str] = []
    if suffix == ".obj":
        names = [name for _, name in _obj_references(path, path.read_bytes())]
    elif suffix == ".gltf":
        tree = read_json(path)
        for entry in [*(tree.get("buffers") or []), *(tree.get("images") or [])]:
            uri = entry.get("uri") if isinstance(entry, dict) else None
            if isinstance(uri, str) and not uri.startswith("data:"):
                names.append(unquote(uri))
    found = [_as_found(path.parent, name) for name in names]
    return list(dict.fromkeys(name for name in found if name is not None))


def _as_found(folder: Path, name: str) -> Optional[str]:
    """``name`` as the resolver finds it in ``folder``: as written, without a leading slash, or its file
    name alone (a path from another machine, C:/textures/a.png, next to the mesh); None when absent."""
    for candidate in (name, name.lstrip("/"), PurePosixPath(name).name):
        if candidate and (folder / candidate).is_file():
            return candidate
    return None


def _obj_references(path: Path, data: bytes) -> list[tuple[str, str]]:
    """(keyword, file) of each file the OBJ ``path`` (its text ``data``) names, relative to its folder: its
    material libraries ("mtllib") and the maps they name (the map line's keyword, "map_Kd" say; the file
    is the line's last word, after its options)."""
    def posix(name: str) -> PurePosixPath:
        return PurePosixPath(name.replace("\\", "/"))

    references = []
    for library in _material_libraries(data):
        references.append(("mtllib", posix(library).as_posix()))
        if (path.parent / library).is_file():
            references += [(keyword.decode(), (posix(library).parent / posix(rest.decode("utf-8", "replace")
                                                                               .split()[-1])).as_posix())
                           for keyword, rest in MTL_MAPS.findall((path.parent / library).read_bytes())]
    return references


def _material_libraries(data: bytes) -> list[str]:
    """The files an OBJ text's ``mtllib`` lines name (one line may name several). A search for the word:
    a regular expression over a 94 MB OBJ took 0.3 s, most of what this added to loading it."""
    names, start = [], data.find(b"mtllib")
    while start >= 0:
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        starts_line = not data[data.rfind(b"\n", 0, start) + 1:start].strip()
        if starts_line and data[start + 6:start + 7].isspace():
            names += data[start + 6:end].decode("utf-8", "replace").split()
        start = data.find(b"mtllib", end)
    return names


def _missing_obj_maps(path: Path, data: bytes) -> list[str]:
    """The base colour maps (``map_Kd``) the OBJ ``path`` (its text ``data``) names that are not there."""
    return [name for keyword, name in _obj_references(path, data)
            if keyword.lower() == "map_kd" and _as_found(path.parent, name) is None]


def load_mesh(path: Union[str, Path], *, object_name: str = "", unwrap: str = "auto") -> Mesh:
    """Load a mesh file into a validated :class:`Mesh`.

    object_name : pick one object of a multi-object scene by node or geometry name; otherwise
        all objects are merged (with their transforms applied)
    unwrap : "auto" unwraps with xatlas only when there are no UVs, "always" replaces the UVs,
        "never" leaves a mesh without UVs as it is
    """
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise MeshError(f"mesh file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise MeshError(f"{path.name}: unsupported mesh format {path.suffix!r}; "
                        f"use one of {', '.join(MESH_SUFFIXES)}")
    source, hints, uv_gap, gltf, baked_uvs, dequantized = str(path), {}, "", {}, False, None
    unusable: Optional[tuple[str, str]] = None  # why the file's UVs cannot be used, and what to do about it
    picked, object_names = "", []  # the OBJ object --object kept, and the names of the file's o lines
    if suffix == ".obj":
        data, line_numbers = _join_continued_lines(path.read_bytes())
        text = _obj_lines(data)
        object_names = _obj_object_names(text) if object_name else []  # a file may have a million o lines
        if object_name and (only := _obj_only_object(text, object_names, object_name, path.name)) is not None:
            data, picked, object_name = only, object_name, ""
            text = _obj_lines(data)
        corners, sizes, lines, relative = _obj_faces(text, path.name, line_numbers)
        uv_gap = _obj_uv_gap(corners, sizes, lines)
        lists = ObjLists(*(_obj_numbers(text, keyword, count, path.name, required)
                           for keyword, count, required in ((b"v", 3, 3), (b"vt", 2, 1), (b"vn", 3, 3))))
        skeleton = None if uv_gap else _obj_skeleton(text, corners, sizes)
        readable = skeleton if skeleton is not None else _obj_for_trimesh(text, corners, sizes, relative)
        if readable is None and picked:
            readable = data
        if readable is not None:
            source = io.BytesIO(readable)
            hints = {"file_type": "obj", "resolver": file_resolver(path)}
    elif suffix in (".glb", ".gltf"):
        gltf = read_json(path)  # the file's own tree: a file painted whole is written back from it
        if problem := _compression_problem(gltf):
            raise MeshError(f"{path.name}: {problem}")
        # quantized positions, normals and UVs, which trimesh reads unscaled, become floats
        readable: Optional[bytes] = None  # what trimesh reads, where it is not the file as it is
        integer_uvs = bool(plain_integer_uvs(gltf))
        quantized = integer_uvs or bool(normalized_attributes(gltf))
        tree, whole_file = gltf, self_contained_glb(path, gltf) if quantized else None
        if whole_file is not None:
            try:
                readable = dequantized_glb(whole_file)
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                raise MeshError(f"{path.name}: cannot read its quantized vertex data ({exc})") from None
            tree, _ = glb_parts(readable)
        baked_uvs = integer_uvs and not plain_integer_uvs(tree)
        dequantized = readable
        if stored_as_integers(tree, "POSITION", normalized_only=True):  # its buffers could not all be read here
            raise MeshError(f"{path.name}: the positions are stored as normalized integers (KHR_mesh_quantization) "
                            "in buffers texgen cannot read here; make the file self-contained (a .glb)")
        if stored_as_integers(tree, "TEXCOORD_0"):
            unusable = ("the UVs (TEXCOORD_0) are stored as integers (quantized) that texgen cannot read here: the "
                        "maps read them through different texture transforms, or the buffers are not all readable",
                        "export it with float UVs (gltfpack -noq)")
        # trimesh loads TEXCOORD_1 under this name; integers it would read unscaled are left out
        if any("TEXCOORD_1" in (primitive.get("attributes") or {}) for primitive in primitives(tree)) \
                and not stored_as_integers(tree, "TEXCOORD_1"):
            readable = with_attribute_renamed(readable or path.read_bytes(), tree, "TEXCOORD_1", SECOND_UVS)
        if readable is not None:
            source = io.BytesIO(readable)
            hints = {"file_type": "glb" if whole_file is not None else suffix[1:], "resolver": file_resolver(path)}
    try:
        loaded = trimesh.load(source, process=False, **hints)
    except Exception as exc:  # trimesh raises many types for corrupt files
        loaded = _binary_ply_of_polygons(path) if suffix == ".ply" else None
        if loaded is None:
            raise MeshError(f"{path.name}: cannot read the file as a mesh ({type(exc).__name__}: {exc})") from None
    parts = _scene_parts(loaded, path.name, object_name, object_names)
    if not parts:
        raise MeshError(f"{path.name}: the file contains no triangle mesh")
    mesh, gutter = _merge(parts, path.stem) if len(parts) > 1 else (_from_trimesh(parts[0][1], path.stem), None)
    if note := _colours_note(parts, gltf):
        mesh.notes.append(note)
    if suffix == ".obj":
        tiling = None if gutter is None else _obj_parts(data, lines, line_numbers, parts, gutter)
        if skeleton is not None:  # one part, read from the skeleton: the file's own lists make the mesh
            _obj_own_lists(mesh, lists, corners, sizes, whole=False)
        elif (gutter is not None and tiling is None) or not _obj_own_lists(mesh, lists, corners, sizes, tiling):
            _weld_obj(mesh, lists.positions, corners[:, 0].reshape(-1, 3) if (sizes == 3).all() else None)
        if uv_gap and not mesh.has_uvs:  # trimesh drops every UV of an OBJ in which some faces have none
            unusable = (uv_gap, "give every face a vt index")
        if picked:
            _drop_unused_vertices(mesh)
            mesh.notes.append(f"kept the object {picked!r} (its o lines) of the file's {len(set(object_names))}; "
                              "the others are left out")
    elif suffix == ".ply":
        _ply_own_lists(mesh, loaded)
    # a glTF file that texgen paints all of, on its own UVs, is written back itself with the new map (Mesh.source_glb)
    # (UVs read through their maps' transform are written back as read, as floats: the new map is for them)
    paints_whole_file = (suffix in (".glb", ".gltf") and not object_name and gutter is None and unusable is None
                         and mesh.has_uvs and unwrap != "always")
    written_back = None
    if paints_whole_file:
        written_back = dequantized if baked_uvs else self_contained_glb(path, gltf)
    if suffix in (".glb", ".gltf"):  # the maps as read: without the transforms baked into the UVs
        _gltf_details(mesh, tree, written_back is not None, path.name)
        if baked_uvs and unwrap != "always":
            mesh.notes.append("the UVs are stored as integers that the maps read through a texture transform (as "
                              "gltfpack quantizes them): they are read through it, and written back so, as floats")
    if suffix == ".obj" and mesh.texture is None and (missing := _missing_obj_maps(path, data)):
        mesh.notes.append(f"the material names a base colour map that is not there ({', '.join(missing)}); "
                          "the mesh is read without it")
    if unusable is not None:
        reason, remedy = unusable
        if unwrap != "always":
            raise MeshError(f"{path.name}: {reason}, so the file's UVs cannot be used; {remedy}, "
                            "or pass --unwrap always to ignore the file's UVs")
        mesh.uvs = mesh.uv_faces = None
        mesh.notes.append(f"{reason}; the file's UVs are ignored anyway (--unwrap always)")
    mesh.validate()
    if written_back is not None:
        mesh.source_glb = written_back
    elif note := _animation_note(gltf):
        mesh.notes.append(note)
    return apply_unwrap(mesh, unwrap)


def _compression_problem(gltf: dict) -> str:
    """Why a glTF file's compressed geometry cannot be read here ('' when it can): trimesh decodes
    Draco (KHR_draco_mesh_compression) with DracoPy, a dependency of texgen, and reads placeholder
    zeros without it; it cannot decode meshopt (EXT_meshopt_compression), whose data is then only
    there where the file keeps an uncompressed fallback (the extension is not required)."""
    if "EXT_meshopt_compression" in (gltf.get("extensionsRequired") or []):
        return ("the geometry is compressed with EXT_meshopt_compression (as gltfpack -c writes it), which texgen "
                "cannot decode yet; write the file without it (gltfpack without -c, or gltf-transform without meshopt)")
    if "KHR_draco_mesh_compression" in (gltf.get("extensionsUsed") or []):
        import importlib.util

        if importlib.util.find_spec("DracoPy") is None:
            return ("the geometry is Draco-compressed (KHR_draco_mesh_compression) and DracoPy, which decodes it, "
                    "is not installed: pip install DracoPy")
    return ""


def _gltf_details(mesh: Mesh, gltf: dict, whole: bool, filename: str) -> None:
    """What trimesh does not read from a glTF file's material (see :meth:`Material.with_gltf_details`),
    a base colour map on another UV set than TEXCOORD_0, which then does not map on the UVs kept, a
    base colour map's texture transform, which is applied (:func:`texgen.material.on_plain_uvs`), and
    a word on the second UV set. ``whole``: the GLB output is the file itself (``Mesh.source_glb``),
    which keeps what a GLB built from the mesh would leave out, so that is not noted. ``filename``
    names the file in errors."""
    if mesh.uvs2 is not None:
        mesh.notes.append("the second UV set (TEXCOORD_1) is kept as it is in the GLB output; an OBJ has room "
                          "for one UV set")
    elif stored_as_integers(gltf, "TEXCOORD_1"):
        mesh.notes.append("the second UV set (TEXCOORD_1) is stored as integers (quantized), which texgen cannot "
                          "read yet; it is left out of the exports")
    if mesh.material is None:
        return
    mapping = base_colour_mapping(gltf, mesh.material.name)
    if mapping.uv_set and mesh.texture is not None:
        mesh.texture = mesh.texture_alpha = None
        mesh.notes.append(f"the base colour map reads TEXCOORD_{mapping.uv_set}, not the UVs texgen paints "
                          "(TEXCOORD_0), so it is not used")
    elif mapping.transform is None and mesh.texture is not None:
        mesh.notes.append("the materials map the base colour map with different texture transforms or samplers, "
                          "which texgen does not apply: the old map is read on the plain UVs, and a new map is "
                          "made for them")
    elif mapping.transform and mesh.texture is not None:
        height, width = mesh.texture.shape[:2]
        try:
            mesh.texture = on_plain_uvs(mesh.texture, mapping.transform, mapping.wrap)
        except ValueError as exc:
            raise MeshError(f"{filename}: the base colour map's {exc}") from None
        if mesh.texture_alpha is not None:
            mesh.texture_alpha = on_plain_uvs(mesh.texture_alpha, mapping.transform, mapping.wrap)
        mesh.notes.append(f"the base colour map's KHR_texture_transform is applied: the {width} x {height} map is "
                          f"read as the {mesh.texture.shape[1]} x {mesh.texture.shape[0]} one it makes on the "
                          "plain UVs, which the new map uses too")
    mesh.material = mesh.material.with_gltf_details(gltf, [] if whole else mesh.notes,
                                                    uv_sets=1 if mesh.uvs2 is None else 2)


def _animation_note(gltf: dict) -> str:
    """A note when a glTF file has a skin, morph targets or animations, which a GLB output rebuilt
    from the mesh leaves out; "" otherwise."""
    animated = [what for what, present in (
        ("skin (rig)", bool(gltf.get("skins"))),
        ("morph targets", any(primitive.get("targets") for primitive in primitives(gltf))),
        ("animations", bool(gltf.get("animations")))) if present]
    if not animated:
        return ""
    return (f"the file's {', '.join(animated)} are left out of the outputs, which hold the static mesh: put the "
            "new texture on the original file's material to keep them")


def _colours_note(parts: list, gltf: dict) -> str:
    """A note when the file colours its vertices or faces (glTF COLOR_0; PLY, OBJ or OFF colours), which
    the outputs leave out; "" otherwise. trimesh drops a glTF file's COLOR_0 when the mesh is textured."""
    kinds = {getattr(tm.visual, "kind", None) for _, tm in parts} & {"vertex", "face"}
    if any("COLOR_0" in (primitive.get("attributes") or {}) for primitive in primitives(gltf)):
        kinds.add("vertex")
    if not kinds:
        return ""
    return (f"the file's {' and '.join(sorted(kinds))} colours are left out of the outputs: the new texture "
            "replaces them (a glTF viewer would multiply it by them)")


def _scene_parts(loaded, filename: str, object_name: str, object_names: Sequence[str] = ()) -> list:
    """[(name, trimesh.Trimesh)] with scene transforms applied. ``object_names``: the objects the file
    names itself (an OBJ's ``o`` lines); ``object_name`` may pick a file of one such object by its name
    when trimesh reads one mesh, and an error that finds no ``object_name`` lists them."""
    import trimesh

    own_name = object_names[0] if len(set(object_names)) == 1 else ""
    if isinstance(loaded, trimesh.Trimesh):
        name = loaded.metadata.get("name", filename)
        parts = [(f"{name}/{own_name}" if own_name else name, loaded)]
    elif isinstance(loaded, trimesh.Scene):
        parts = []
        for node in loaded.graph.nodes_geometry:
            transform, geometry_name = loaded.graph[node]
            geometry = loaded.geometry[geometry_name]
            if isinstance(geometry, trimesh.Trimesh) and len(geometry.faces):
                geometry = geometry.copy(include_cache=True)  # the cache holds the file's normals
                geometry.apply_transform(transform)
                parts.append((node if node == geometry_name else f"{node}/{geometry_name}", geometry))
    else:
        raise MeshError(f"{filename}: the file holds a {type(loaded).__name__}, not a triangle mesh")
    if object_name:
        chosen = [p for p in parts if object_name in p[0].split("/")]
        if not chosen:
            names = ", ".join(p[0] for p in parts) or "none"
            own = f"; its o lines name {', '.join(dict.fromkeys(object_names))}" if len(set(object_names)) > 1 else ""
            raise MeshError(f"{filename}: no object named {object_name!r}; objects: {names}{own}")
        return chosen
    return parts


def _drop_unused_vertices(mesh: Mesh) -> None:
    """Leave out the positions, UVs and normals no face uses, keeping the rest in order."""
    for values, faces in (("positions", "faces"), ("uvs", "uv_faces"), ("normals", "normal_faces"),
                          ("uvs2", "uv2_faces")):
        if getattr(mesh, values) is not None:
            used, remapped = np.unique(getattr(mesh, faces), return_inverse=True)
            setattr(mesh, values, getattr(mesh, values)[used])
            setattr(mesh, faces, remapped.reshape(-1, 3))


def _from_trimesh(tm, name: str) -> Mesh:
    uvs = getattr(tm.visual, "uv", None)
    texture = alpha = None
    material = getattr(tm.visual, "material", None)
    if material is not None:
        image = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
        if image is not None:
            texture = np.asarray(image.convert("RGB"))
            if texture.shape[:2] == (2, 2) and (texture == texture[0, 0]).all():
                texture = None  # trimesh's placeholder image for a material that has none
            elif "A" in image.getbands() or "transparency" in image.info:
                alpha = np.asarray(image.convert("RGBA"))[:, :, 3]
                alpha = alpha if (alpha < 255).any() else None
    faces = np.asarray(tm.faces, dtype=np.int64)
    mesh = Mesh(np.asarray(tm.vertices, dtype=np.float64), faces, texture=texture, name=name,
                material=None if material is None else Material.from_trimesh(material), texture_alpha=alpha)
    if uvs is not None and len(uvs) == len(tm.vertices):
        mesh.uvs, mesh.uv_faces = np.asarray(uvs, dtype=np.float64), faces.copy()
    # trimesh caches the normals a file gives (glTF NORMAL, OBJ vn, PLY nx ny nz) and computes them only when asked
    if "vertex_normals" in tm._cache:
        mesh.normals, mesh.normal_faces = np.asarray(tm.vertex_normals, dtype=np.float64), faces.copy()
    second = getattr(tm, "vertex_attributes", {}).get(SECOND_UVS)
    if second is not None and len(second) == len(tm.vertices):
        second = np.asarray(second, dtype=np.float64).reshape(len(second), -1)[:, :2]
        # glTF's v runs down, texgen's up
        mesh.uvs2, mesh.uv2_faces = np.column_stack([second[:, 0], 1.0 - second[:, 1]]), faces.copy()
    return mesh


def _merge(parts: list, name: str) -> tuple[Mesh, Optional[np.ndarray]]:
    """Merge several objects into one mesh. Objects that map one texture (an atlas they share) keep
    their UVs and it. Otherwise their UV squares, and the textures they map, are tiled side by side
    with a gutter between them so they do not overlap. Returns the mesh and the gutter, (2,) the
    fraction of a tile left free on each side in u and v (see :func:`texgen.uvtiles.place_in_tile`),
    or None when nothing was tiled.

    Each face is first shifted by whole tiles into its object's 0-1 square, as ``Mesh.corner_uvs`` does,
    so a face in UV tile [1, 2] keeps the texels a repeating sampler reads.
    """
    meshes = [_from_trimesh(tm, f"{name}/{part_name}") for part_name, tm in parts]
    for m in meshes:  # each object alone: tiling would clip a face across a UV tile border into its square unseen
        if m.has_uvs:
            m.validate(warn_degenerate=False)  # the merged mesh warns of them once
    with_uvs = all(m.has_uvs for m in meshes)
    shared = with_uvs and meshes[0].texture is not None and all(
        m.texture is not None and np.array_equal(m.texture, meshes[0].texture) for m in meshes[1:])
    tiled = with_uvs and not shared
    tiles = grid_size(len(meshes))
    texels = _tile_texels(meshes, tiles) if tiled else None
    # the gutter each side of a tile, a fraction of it in u and v: whole texels of the merged texture
    gutter = None if not tiled else np.full(2, 1 / TILE_GUTTER) if texels is None else \
        texels[1] / (texels[0] + 2 * texels[1])
    positions, faces, uvs, uv_faces = [], [], [], []
    vertex_offset = uv_offset = 0
    for index, m in enumerate(meshes):
        positions.append(m.positions)
        faces.append(m.faces + vertex_offset)
        vertex_offset += len(m.positions)
        if with_uvs:
            placed, placed_faces = place_in_tile(m.uvs, m.uv_faces, index, tiles, gutter) if tiled else \
                (m.uvs, m.uv_faces)
            uvs.append(placed)
            uv_faces.append(placed_faces + uv_offset)
            uv_offset += len(placed)
    texture = meshes[0].texture if shared else \
        None if texels is None else _tiled_texture(meshes, [tm for _, tm in parts], tiles, *texels)
    mesh = Mesh(np.concatenate(positions), np.concatenate(faces), np.concatenate(uvs) if with_uvs else None,
                np.concatenate(uv_faces) if with_uvs else None, texture, name)
    if shared and all(m.material is not None and m.material.same_as(meshes[0].material) for m in meshes):
        mesh.material = meshes[0].material
    mesh.texture_alpha = meshes[0].texture_alpha if shared else None
    if all(m.normals is not None for m in meshes):
        mesh.normals, mesh.normal_faces = _concatenate_corner_tables([(m.normals, m.normal_faces) for m in meshes])
    if all(m.uvs2 is not None for m in meshes):  # each object's own layout, as the file has them (lightmaps)
        mesh.uvs2, mesh.uv2_faces = _concatenate_corner_tables([(m.uvs2, m.uv2_faces) for m in meshes])
    names = ", ".join(p[0] for p in parts)
    note = f"merged {len(parts)} objects ({names})"
    if shared:
        note += "; they map one texture, so their UVs and it are kept as they are"
    elif with_uvs:
        note += f"; their UV squares were tiled {tiles}x{tiles} so they do not overlap (use --object NAME to keep one)"
    elif any(m.has_uvs for m in meshes):
        note += "; some had no UVs, so the merged mesh is unwrapped anew"
    if texels is not None:
        width, height = texels[0].tolist()
        resized = [f"{part[0]} ({m.texture.shape[1]}x{m.texture.shape[0]})" for part, m in zip(parts, meshes)
                   if m.texture is not None and m.texture.shape[:2] != (height, width)]
        if resized:
            note += f"; the textures of {', '.join(resized)} were resampled to {width}x{height} to fill a tile each"
    wrapped = [part[0] for part, m in zip(parts, meshes) if tiled and m.uv_tiles_wrapped]
    if wrapped:
        note += (f"; the UVs of {', '.join(wrapped)} outside [0, 1] were wrapped into the 0-1 square first "
                 "(glTF's repeat sampler), so several faces share texels")
    with_alpha = [part[0] for part, m in zip(parts, meshes) if m.texture_alpha is not None]
    if with_alpha and mesh.texture_alpha is None:
        note += f"; the alpha (cut-outs) of the textures of {', '.join(with_alpha)} is not kept"
    with_second = [part[0] for part, m in zip(parts, meshes) if m.uvs2 is not None]
    if with_second and mesh.uvs2 is None:
        note += f"; the second UV set (TEXCOORD_1) of {', '.join(with_second)} is dropped, as the others have none"
    with_maps = [part[0] for part, m in zip(parts, meshes) if m.material is not None and m.material.maps]
    if with_maps and mesh.material is None:
        note += f"; the other maps of the materials of {', '.join(with_maps)} (normal, roughness...) are not kept"
    mesh.notes.append(note)
    log.warning("%s: %s", name, note)
    return mesh, gutter


def _concatenate_corner_tables(tables: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """One per-corner table (values, (F, 3) indices) of several objects' in face order."""
    offsets = np.cumsum([0] + [len(values) for values, _ in tables[:-1]])
    return (np.concatenate([values for values, _ in tables]),
            np.concatenate([indices + offset for (_, indices), offset in zip(tables, offsets)]))


def _tile_texels(meshes: list[Mesh], tiles: int) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """A merged tile's inside and the gutter on each side of it, (2,) int64 texels each, width then
    height; None when no object has a texture.

    The inside is the largest texture's size, so that texture keeps its texels, capped so that a tile
    is at most MERGED_TEXTURE_SIZE / tiles texels; the gutter is the fewest whole texels that make at
    least 1/TILE_GUTTER of the tile.
    """
    sizes = [m.texture.shape[1::-1] for m in meshes if m.texture is not None]
    if not sizes:
        return None
    largest = MERGED_TEXTURE_SIZE // tiles
    inside = np.minimum(np.max(sizes, axis=0), largest - 2 * -(-largest // TILE_GUTTER))
    return inside, -(-inside // (TILE_GUTTER - 2))


def _tiled_texture(meshes: list[Mesh], parts: list, tiles: int, inside: np.ndarray, gutter: np.ndarray) -> np.ndarray:
    """(tiles * (H + 2 * gutter height), tiles * (W + 2 * gutter width), 3) uint8: every object's texture,
    resized to ``inside`` (W, H) and padded with its edge colours into the ``gutter`` (2,) texels around
    it, in the tile of the merged UV square that ``_merge`` gives it.

    An object without a texture fills its tile with its base colour; a tile of no object is mid grey.
    """
    from PIL import Image

    (width, height), (pad_x, pad_y) = inside.tolist(), gutter.tolist()
    tile_width, tile_height = width + 2 * pad_x, height + 2 * pad_y
    merged = np.full((tiles * tile_height, tiles * tile_width, 3), 128, np.uint8)
    for index, (m, tm) in enumerate(zip(meshes, parts)):
        row, column = divmod(index, tiles)  # row 0 is the top of the image, v = 1
        tile = merged[row * tile_height:(row + 1) * tile_height, column * tile_width:(column + 1) * tile_width]
        if m.texture is None:
            tile[:] = _base_colour(tm)
            continue
        image = m.texture
        if image.shape[:2] != (height, width):
            image = np.asarray(Image.fromarray(image).resize((width, height), Image.LANCZOS))
        tile[:] = np.pad(image, ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="edge")
    return merged


def _base_colour(tm) -> np.ndarray:
    """(3,) uint8 sRGB colour of an untextured object: its material's base colour factor (glTF) or
    diffuse colour (OBJ), both linear, or mid grey."""
    material = getattr(tm.visual, "material", None)
    factor = getattr(material, "baseColorFactor", None)
    if factor is None:
        factor = getattr(material, "diffuse", None)
    if factor is None:
        return np.full(3, 128, np.uint8)
    linear = np.asarray(factor[:3], dtype=np.float64) / 255
    srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.round(255 * srgb).astype(np.uint8)


def _join_continued_lines(data: bytes) -> tuple[bytes, np.ndarray]:
    """The OBJ text with lines continued by a backslash joined, as trimesh joins them, and (L,)
    int64 the file's 1-based line number of each joined line, for error messages."""
    text = np.frombuffer(data, np.uint8)
    newline = np.flatnonzero(text == ord("\n"))
    before = np.where(newline >= 1, text[np.maximum(newline - 1, 0)], 0)
    continued = (before == ord("\\")) | ((before == ord("\r")) & (newline >= 2)
                                          & (text[np.maximum(newline - 2, 0)] == ord("\\")))
    line_numbers = np.r_[1, np.flatnonzero(~continued) + 2]
    return data.replace(b"\\\r\n", b"").replace(b"\\\n", b""), line_numbers


class _ObjLines(NamedTuple):
    """An OBJ text's lines and which of them are ``v``, ``vt``, ``vn``, ``f`` and ``o`` lines, found vectorised.

    data : the text, ending in a newline; starts : (L + 1,) int64 where each line starts, then the end;
    kinds : keyword -> (L,) bool the lines it opens
    """

    data: bytes
    starts: np.ndarray
    kinds: dict[bytes, np.ndarray]

    def line(self, number: int) -> bytes:
        """Line ``number``'s text, without the blanks around it."""
        return self.data[self.starts[number]:self.starts[number + 1]].strip()

    def copy_lines(self, chosen: np.ndarray) -> np.ndarray:
        """(B,) uint8 a writable copy of the ``chosen`` lines (ascending line numbers), newlines included;
        consecutive lines are copied as one slice."""
        breaks = np.flatnonzero(np.diff(chosen) != 1) + 1
        first, last = chosen[np.r_[0, breaks]], chosen[np.r_[breaks - 1, -1]]
        runs = zip(self.starts[first].tolist(), self.starts[last + 1].tolist())
        return np.frombuffer(b"".join(self.data[a:b] for a, b in runs), np.uint8).copy()


def _obj_lines(data: bytes) -> _ObjLines:
    """:class:`_ObjLines` of an OBJ text (lines continued by a backslash already joined)."""
    data += b"\n"
    padded = np.frombuffer(data + b"  ", np.uint8)
    starts = np.concatenate([[0], np.flatnonzero(padded == ord("\n")) + 1])  # the last is the end
    first, second, third = (padded[starts[:-1] + i] for i in range(3))
    second_blank, third_blank = (second == ord(" ")) | (second == ord("\t")), (third == ord(" ")) | (third == ord("\t"))
    kinds = {b"v": (first == ord("v")) & second_blank,
             b"vt": (first == ord("v")) & (second == ord("t")) & third_blank,
             b"vn": (first == ord("v")) & (second == ord("n")) & third_blank,
             b"f": (first == ord("f")) & second_blank, b"o": (first == ord("o")) & second_blank}
    return _ObjLines(data, starts, kinds)


def _obj_faces(text: _ObjLines, filename: str,
               line_numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Read and check the ``f`` lines of an OBJ file, vectorised (trimesh reads them again).

    Negative indices count back from the face's line, as OBJ defines them. Raises MeshError naming
    the line of the first face that cannot be read or has an index out of range (trimesh would drop
    every UV of the file for one bad ``vt`` index).

    Returns corners (C, 3) int64 0-based v, vt, vn indices (-1 where the file gives none),
    sizes (P,) int64 corners of each ``f`` line, lines (P,) int64 its line number in the file, and whether
    any index was negative. line_numbers : (L,) the file's line number of each line of ``text``.
    """
    kinds = [text.kinds[keyword] for keyword in (b"v", b"vt", b"vn")]
    face_lines = np.flatnonzero(text.kinds[b"f"])
    above = np.stack([np.cumsum(kind)[face_lines] for kind in kinds], axis=1)  # (P, 3) v, vt, vn lines
    totals = np.array([kind.sum() for kind in kinds])
    if not len(face_lines):
        return np.zeros((0, 3), np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), False

    # a corner is "v", "v/vt", "v//vn" or "v/vt/vn", an index maybe negative
    chars = text.copy_lines(face_lines)
    newlines = np.flatnonzero(chars == ord("\n"))
    chars[np.r_[0, newlines[:-1] + 1]] = ord(" ")  # the "f" of each line
    digit, minus, slash = (chars >= ord("0")) & (chars <= ord("9")), chars == ord("-"), chars == ord("/")
    space = (chars == ord(" ")) | ((chars >= ord("\t")) & (chars <= ord("\r")))
    token_starts = np.flatnonzero(~space[1:] & space[:-1]) + 1
    slot_count = np.diff(np.searchsorted(np.flatnonzero(slash), np.r_[token_starts, len(chars)]))
    sizes = np.diff(np.r_[0, np.searchsorted(token_starts, newlines)])
    bad = ~(digit | minus | slash | space)
    bad[token_starts] |= slash[token_starts]
    bad[1:-1] |= minus[1:-1] & ~(digit[2:] & (space[:-2] | slash[:-2]))  # "-" opens an index
    bad_at = np.r_[np.flatnonzero(bad)[:1], token_starts[slot_count > 2][:1], newlines[sizes < 3][:1]]
    if len(bad_at):
        polygon = int(np.searchsorted(newlines, bad_at.min()))
        line = int(face_lines[polygon])
        content = text.line(line).decode(errors="replace")
        reason = " (a face needs 3 corners or more; a line is an 'l' line)" if 0 < sizes[polygon] < 3 else ""
        raise MeshError(f"{filename}: line {line_numbers[line]}: cannot read the face {content!r}{reason}")

    numbers = np.flatnonzero(minus[1:] | (digit[1:] & ~(digit | minus)[:-1])) + 1
    before = chars[numbers - 1]
    slot = np.where(before == ord("/"), np.where(chars[numbers - 2] == ord("/"), 2, 1), 0)
    slot[1:][(slot[1:] == 1) & (slot[:-1] == 1)] = 2  # v/vt/vn: vn follows vt
    token = np.cumsum(slot == 0) - 1
    values = np.zeros((len(token_starts), 3), np.int64)
    values[token, slot] = np.fromstring(chars.tobytes().replace(b"/", b" "), dtype=np.int64, sep=" ")
    given = np.zeros(values.shape, bool)
    given[token, slot] = True
    line_of = np.repeat(np.arange(len(face_lines)), sizes)
    corners = np.where(values > 0, values - 1, np.where(values < 0, above[line_of] + values, -1))
    bad = given & ((corners < 0) | (corners >= totals))
    if bad.any():
        corner = int(np.flatnonzero(bad.any(axis=1))[0])
        slot = int(np.flatnonzero(bad[corner])[0])
        kind, index = ("v", "vt", "vn")[slot], int(values[corner, slot])
        if index > 0:
            count = int(totals[slot])
            detail = f"the file has only {count} {kind} line{'s' * (count != 1)}"
        elif index < 0:
            count = int(above[line_of[corner], slot])
            detail = f"the face has only {count} {kind} line{'s' * (count != 1)} above it"
        else:
            detail = "OBJ indices start at 1"
        line = line_numbers[face_lines[line_of[corner]]]
        raise MeshError(f"{filename}: line {line}: a face refers to {kind} {index}, but {detail}")
    return np.where(given, corners, -1), sizes, line_numbers[face_lines], bool((values < 0).any())


def _obj_uv_gap(corners: np.ndarray, sizes: np.ndarray, lines: np.ndarray) -> str:
    """How many of an OBJ's faces lack a ``vt`` index and where the first is, when others have one;
    '' when all or none have one.

    corners : (C, 3) int64 v, vt, vn indices (-1: none); sizes : (P,) corners of each f line;
    lines : (P,) their line numbers
    """
    without = np.minimum.reduceat(corners[:, 1], np.cumsum(sizes) - sizes) < 0  # (P,) a corner has no vt
    if without.all() or not without.any():
        return ""
    return (f"faces without texture coordinates (a vt index): {int(without.sum())} of {len(without)}, "
            f"the first on line {int(lines[without][0])}")


def _obj_object_names(text: _ObjLines) -> list[str]:
    """The name of each ``o`` line of an OBJ, in file order."""
    return [_keyword_and_name(text.line(line))[1].decode(errors="replace")
            for line in np.flatnonzero(text.kinds[b"o"]).tolist()]


def _keyword_and_name(content: bytes) -> tuple[bytes, bytes]:
    """An OBJ line's keyword and the rest of it (a name: b'' when there is none)."""
    keyword, *name = content.split(None, 1)
    return keyword, name[0] if name else b""


def _obj_only_object(text: _ObjLines, names: list[str], name: str, filename: str) -> Optional[bytes]:
    """The OBJ text with the ``f`` lines of every object but ``name`` (by its ``o`` lines, whose
    ``names`` are given) blanked out, line for line, so that line numbers and the ``v``/``vt``/``vn``
    lists stay as they are; None when the file has fewer than two objects or none named ``name``.
    trimesh reads an OBJ's objects merged by material, so ``--object`` could not pick one by its ``o`` name.
    """
    if len(set(names)) < 2 or name not in names:
        return None
    object_of_line = np.cumsum(text.kinds[b"o"]) - 1  # the o line above each line, -1 before the first
    chosen = np.flatnonzero(np.array(names) == name)
    blank = text.kinds[b"f"] & ~np.isin(object_of_line, chosen)
    if (text.kinds[b"f"] & ~blank).sum() == 0:
        raise MeshError(f"{filename}: the object {name!r} has no faces")
    data = np.frombuffer(text.data, np.uint8).copy()
    data[np.repeat(blank, np.diff(text.starts)) & (data != ord("\n"))] = ord(" ")
    return data[:-1].tobytes()  # without the newline _obj_lines added


PART_KEYWORDS = (b"mtllib", b"usemtl", b"o", b"g")  # the lines that decide an OBJ's parts, names and materials


def _obj_skeleton(text: _ObjLines, corners: np.ndarray, sizes: np.ndarray) -> Optional[bytes]:
    """A small OBJ that trimesh reads as it reads the whole file's one part, for its material,
    texture and vertex colours: the file's ``mtllib``, ``o``, ``g`` and ``usemtl`` lines, then its
    first face and the ``v``, ``vt`` and ``vn`` lines that face uses. The file's own lists then give
    the mesh (:func:`_obj_own_lists`), so a scan's million faces are parsed once, not twice
    (trimesh's parse took 5.5 of a 1M-face OBJ's 8.6 s).

    None, and trimesh reads the whole file, when it may make several parts: more than one
    material, object or group, or one that starts after the first face.
    """
    face_lines = np.flatnonzero(text.kinds[b"f"])
    first_chars = np.frombuffer(text.data, np.uint8)[text.starts[:-1]]
    candidates = np.flatnonzero(np.isin(first_chars, np.frombuffer(b"muog", np.uint8)))
    if not len(face_lines) or len(candidates) > 64:
        return None
    kept, names = [], {keyword: set() for keyword in PART_KEYWORDS}
    for line in candidates.tolist():
        content = text.line(line)
        keyword, name = _keyword_and_name(content)
        if keyword not in PART_KEYWORDS:
            continue
        if keyword != b"mtllib" and line > face_lines[0]:
            return None  # a material, object or group that starts after the first face
        names[keyword].add(name)
        kept.append(content)
    if any(len(names[keyword]) > 1 for keyword in (b"usemtl", b"o", b"g")):
        return None
    first = corners[:sizes[0]]
    for slot, keyword in enumerate((b"v", b"vt", b"vn")):
        if (first[:, slot] >= 0).any():
            numbered = np.flatnonzero(text.kinds[keyword])[first[:, slot]]
            kept += [keyword + b" " + text.data[text.starts[line] + len(keyword):text.starts[line + 1]].strip()
                     for line in numbered.tolist()]
    corner = [str(k + 1).encode() for k in range(len(first))]
    given = [(first[:, slot] >= 0).all() for slot in (1, 2)]
    pattern = {(False, False): b"%s", (True, False): b"%s/%s", (False, True): b"%s//%s",
               (True, True): b"%s/%s/%s"}[tuple(given)]
    kept.append(b"f " + b" ".join(pattern % ((c,) * (1 + sum(given))) for c in corner))
    return b"\n".join(kept) + b"\n"


def _obj_for_trimesh(text: _ObjLines, corners: np.ndarray, sizes: np.ndarray, relative: bool) -> Optional[bytes]:
    """The OBJ text rewritten where trimesh would misread it; None when it reads the file as it is.

    trimesh drops the UVs of a file whose ``vt`` or ``f`` lines put a tab after the keyword, and
    fails on such ``v`` lines: those tabs become spaces. It counts negative indices from the end of
    the file, not from the face: those faces are written with absolute ones (:func:`_absolute_obj`).
    """
    chars = np.frombuffer(text.data, np.uint8)  # a keyword's line holds the blank after it, before its newline
    tabs = np.concatenate([text.starts[np.flatnonzero(text.kinds[keyword])] + len(keyword)
                           for keyword in (b"v", b"vt", b"vn", b"f")])
    tabs = tabs[chars[tabs] == ord("\t")]
    if not len(tabs) and not relative:
        return None
    data = text.data
    if len(tabs):
        chars = chars.copy()
        chars[tabs] = ord(" ")
        data = chars.tobytes()
    return _absolute_obj(data, corners, sizes) if relative else data


def _absolute_obj(data: bytes, corners: np.ndarray, sizes: np.ndarray) -> bytes:
    """The OBJ file with its ``f`` lines rewritten in absolute (positive, 1-based) indices, vectorised.

    corners : (C, 3) int64 0-based v, vt, vn indices (-1: none); sizes : (P,) corners per f line
    """
    numbers = corners + 1
    width = len(str(int(numbers.max())))
    # per corner: "\nf" before a line's first corner, then per index a separator and its digits
    record = np.empty((len(corners), 2 + 3 * (width + 1)), np.uint8)
    keep = np.empty(record.shape, bool)
    record[:, :2] = np.frombuffer(b"\nf", np.uint8)
    keep[:, :2] = False
    keep[np.cumsum(sizes) - sizes, :2] = True
    indices, kept = record[:, 2:].reshape(-1, 3, width + 1), keep[:, 2:].reshape(-1, 3, width + 1)
    indices[:, :, 0] = np.frombuffer(b" //", np.uint8)
    for k in range(width):
        indices[:, :, 1 + k] = numbers // 10 ** (width - 1 - k) % 10 + ord("0")
    kept[:, :, 1:] = (numbers > 0)[:, :, None] & np.logical_or.accumulate(indices[:, :, 1:] > ord("0"), axis=2)
    kept[:, 0, 0] = True
    kept[:, 1, 0] = numbers[:, 1:].max(axis=1) > 0  # "v/vt" and "v//vn"
    kept[:, 2, 0] = numbers[:, 2] > 0
    faces = iter(record[keep].tobytes()[1:].split(b"\n"))
    return b"\n".join(next(faces) if line[:2] in (b"f ", b"f\t") else line for line in data.split(b"\n"))


class ObjTiling(NamedTuple):
    """Where the faces of an OBJ of several materials went in :func:`_merge`'s tiles.

    part : (P,) the part (tile) of each ``f`` line; gutter : (2,) the tiles' gutter;
    face_counts : (parts,) the triangles trimesh put in each part
    """

    part: np.ndarray
    gutter: np.ndarray
    face_counts: np.ndarray


def _obj_parts(data: bytes, lines: np.ndarray, line_numbers: np.ndarray, parts: list,
               gutter: np.ndarray) -> Optional[ObjTiling]:
    """Which of trimesh's ``parts`` (one per material) each ``f`` line of an OBJ belongs to, by the
    ``usemtl`` line above it; None when the materials do not name the parts one to one.

    lines : (P,) the file's line number of each ``f`` line; line_numbers : (L,) the file's line number
    of each line of ``data``
    """
    names = [getattr(getattr(tm.visual, "material", None), "name", None) for _, tm in parts]
    if None in names or len(set(names)) != len(names):
        return None
    newlines = np.flatnonzero(np.frombuffer(data, np.uint8) == ord("\n"))
    found = list(re.finditer(rb"^usemtl[ \t]+([^\r\n]*?)[ \t]*\r?$", data, flags=re.MULTILINE))
    at = line_numbers[np.searchsorted(newlines, [match.start() for match in found])] if found else np.zeros(0, int)
    last = np.searchsorted(at, lines) - 1  # the usemtl line above each f line
    if (last < 0).any():
        return None
    index = {name: number for number, name in enumerate(names)}
    part = np.array([index.get(match.group(1).decode(errors="replace"), -1) for match in found], np.int64)[last]
    return None if (part < 0).any() else ObjTiling(part, gutter, np.array([len(tm.faces) for _, tm in parts]))


class ObjLists(NamedTuple):
    """An OBJ file's own ``v`` (V, 3), ``vt`` (T, 2) and ``vn`` (N, 3) lists, float64, in file order."""

    positions: np.ndarray
    uvs: np.ndarray
    normals: np.ndarray


def _obj_own_lists(mesh: Mesh, lists: ObjLists, corners: np.ndarray, sizes: np.ndarray,
                   tiling: Optional[ObjTiling] = None, whole: bool = True) -> bool:
    """Give an OBJ the file's own ``v``, ``vt`` and ``vn`` lists and faces back, and its polygons.

    trimesh splits a vertex for every UV it carries and triangulates polygons in its own order;
    here each ``f`` line becomes triangles over the file's own indices (:func:`texgen.polygons.triangulate`),
    in the file's order, so vertices the user kept apart stay apart and the OBJ export can write the
    polygons back. The UVs of a file of several materials (``tiling``: :func:`_obj_parts`) are placed
    in their material's tile, as :func:`_merge` placed trimesh's parts.
    Returns False, and changes nothing, when the file's lists do not account for what trimesh read.
    corners : (C, 3) 0-based v, vt, vn index of each corner (-1: none); sizes : (P,) corners per ``f`` line
    whole : trimesh read every face (not :func:`_obj_skeleton`'s one), and their count is checked
    """
    positions, uvs = lists.positions, lists.uvs
    file_uvs = 0 <= corners[:, 1].min() and corners[:, 1].max() < len(uvs)
    if (whole and int((sizes - 2).sum()) != len(mesh.faces)) or corners[:, 0].max() >= len(positions) \
            or (mesh.has_uvs and not file_uvs):
        return False
    local = triangulate(positions[corners[:, 0]], sizes)
    corner = corner_rows(local, sizes)  # (F, 3) rows of ``corners``
    uv_faces = corners[corner, 1]
    if tiling is not None and mesh.has_uvs:
        part = np.repeat(tiling.part, sizes - 2)  # of each triangle
        if not np.array_equal(np.bincount(part, minlength=len(tiling.face_counts)), tiling.face_counts):
            return False  # trimesh's parts hold other faces than the usemtl lines say
        uvs, uv_faces = _tile_parts(uvs, uv_faces, part, tiling.gutter)
    mesh.positions, mesh.faces = positions, corners[corner, 0]
    if mesh.has_uvs:
        mesh.uvs, mesh.uv_faces = uvs, uv_faces
    mesh.normals = mesh.normal_faces = None
    if (corners[:, 2] >= 0).all():
        mesh.normals, mesh.normal_faces = lists.normals, corners[corner, 2]
    elif (corners[:, 2] >= 0).any():
        mesh.notes.append(f"{int((corners[:, 2] < 0).sum())} of {len(corners)} face corners have no normal (a vn "
                          "index), so the file's normals are not used: the exports write smooth vertex normals")
    if (sizes > 3).any():
        mesh.polygons, mesh.polygon_corners = sizes.astype(np.int64), local
    return True


def _tile_parts(uvs: np.ndarray, uv_faces: np.ndarray, part: np.ndarray,
                gutter: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each part's UVs in its tile (:func:`texgen.uvtiles.place_in_tile`): (T', 2) UVs, (F, 3) their faces.

    uvs : (T, 2); uv_faces : (F, 3) into ``uvs``; part : (F,) part index of each face
    """
    tiles = grid_size(int(part.max()) + 1)
    placed_uvs, placed_faces, offset = [], np.empty_like(uv_faces), 0
    for index in range(int(part.max()) + 1):
        mine = np.flatnonzero(part == index)
        used, local = np.unique(uv_faces[mine], return_inverse=True)
        placed, faces = place_in_tile(uvs[used], local.reshape(-1, 3), index, tiles, gutter)
        placed_uvs.append(placed)
        placed_faces[mine] = faces + offset
        offset += len(placed)
    return np.concatenate(placed_uvs), placed_faces


def _obj_numbers(text: _ObjLines, keyword: bytes, count: int, name: str, required: int | None = None) -> np.ndarray:
    """(N, count) float64: the first ``count`` numbers of every ``v`` (``vt``, ``vn``) line, in file order;
    numbers after the first ``required`` may be missing and read as 0 (OBJ's ``vt u`` means v = 0).

    Raises MeshError when some of those lines hold fewer numbers (their indices would shift) or
    something that is not a number; ``name`` names the mesh.

    The lines are copied out and parsed in one pass (3-4x faster than a search of the whole text);
    lines with fewer than ``count`` numbers, or something else, are read line by line
    (:func:`_obj_numbers_by_line`), which says what is wrong.
    """
    chosen = np.flatnonzero(text.kinds[keyword])
    if not len(chosen):
        return np.zeros((0, count))
    chars = text.copy_lines(chosen)
    newlines = np.flatnonzero(chars == ord("\n"))
    chars[np.r_[0, newlines[:-1] + 1][:, None] + np.arange(len(keyword))] = ord(" ")
    space = (chars == ord(" ")) | ((chars >= ord("\t")) & (chars <= ord("\r")))
    token_starts = np.flatnonzero(~space[1:] & space[:-1]) + 1
    per_line = np.bincount(np.searchsorted(newlines, token_starts), minlength=len(chosen))
    if (per_line < count).any():
        return _obj_numbers_by_line(text.data, keyword, count, name, required, len(chosen))
    rank = np.arange(len(token_starts)) - np.repeat(np.cumsum(per_line) - per_line, per_line)
    if (rank >= count).any():  # a w, a vertex colour, a comment: what follows the numbers read is blanked
        token_ends = np.flatnonzero(space[1:] & ~space[:-1]) + 1
        change = np.zeros(len(chars) + 1, np.int8)
        change[token_starts[rank >= count]] = 1
        change[token_ends[rank >= count]] -= 1
        chars[np.cumsum(change[:-1], dtype=np.int8) > 0] = ord(" ")
    try:
        values = np.fromstring(chars.tobytes(), sep=" ")
    except ValueError:  # something that is not a number
        values = None
    if values is None or values.size != len(chosen) * count:
        return _obj_numbers_by_line(text.data, keyword, count, name, required, len(chosen))
    return values.reshape(-1, count)


def _obj_numbers_by_line(data: bytes, keyword: bytes, count: int, name: str, required: int | None,
                         lines: int) -> np.ndarray:
    """:func:`_obj_numbers` of the ``lines`` lines ``keyword`` opens, read line by line with a regular expression."""
    required = count if required is None else required
    numbers = [rb"[ \t]+(\S+)"] * required + [rb"(?:[ \t]+(\S+))?"] * (count - required)
    found = re.findall(rb"^" + keyword + b"".join(numbers), data, flags=re.MULTILINE)
    kind = keyword.decode()
    if len(found) != lines:
        raise MeshError(f"{name}: {lines - len(found)} of the file's {lines} {kind} lines have fewer than "
                        f"{required} numbers")
    try:
        if required == count:
            return np.array(found, dtype=np.float64).reshape(-1, count)
        values = np.array(found, dtype=np.bytes_).reshape(-1, count)
        return np.where(values == b"", b"0", values).astype(np.float64)
    except ValueError as exc:
        raise MeshError(f"{name}: a {kind} line holds something that is not a number ({exc})") from None


def _weld_obj(mesh: Mesh, positions: np.ndarray, file_faces: Optional[np.ndarray]) -> None:
    """Undo trimesh's OBJ vertex split at UV seams.

    A file of triangles (``file_faces`` (F, 3) int64, its 0-based ``v`` indices) gets its own ``v``
    list (``positions`` (V, 3)) and indices back, so vertices that the user kept apart at one
    position (hard edges, touching parts) stay apart. Otherwise (polygons, several objects)
    vertices are welded on exact position equality, first-seen order.
    """
    if file_faces is not None and len(file_faces) == len(mesh.faces):
        if file_faces.max() < len(positions) and np.array_equal(positions[file_faces], mesh.positions[mesh.faces]):
            mesh.positions, mesh.faces = positions, file_faces
            return
    _, first, inverse = np.unique(mesh.positions, axis=0, return_index=True, return_inverse=True)
    if len(first) == len(mesh.positions):
        return
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    mesh.positions = mesh.positions[first[order]]
    mesh.faces = rank[inverse.reshape(-1)][mesh.faces]


PLY_FACE_LISTS = ("vertex_indices", "vertex_index")  # the names PLY writers give a face's corner list


def _binary_ply_of_polygons(path: Path):
    """A binary PLY whose faces have different corner counts (Blender writes n-gons so), which
    trimesh cannot read: read with plyfile and handed to trimesh as ASCII. None if plyfile cannot
    read it either."""
    import plyfile
    import trimesh

    try:
        data = plyfile.PlyData.read(str(path))
    except Exception:  # plyfile raises many types for corrupt files
        return None
    if data.text:
        return None
    elements = {element.name: element for element in data.elements}
    if "vertex" in elements and "face" in elements:  # trimesh would only say "index out of bounds"
        names = elements["face"].data.dtype.names or ()
        lists = next((elements["face"].data[n] for n in PLY_FACE_LISTS if n in names), None)
        if lists is not None and len(lists):
            sizes, flat = _ragged(lists)
            bad = np.flatnonzero((flat < 0) | (flat >= elements["vertex"].count))
            if len(bad):
                face = int(np.searchsorted(np.cumsum(sizes), bad[0], side="right"))
                raise MeshError(f"{path.name}: face {face} refers to vertex {int(flat[bad[0]])}, but the file has "
                                f"only {elements['vertex'].count} vertices")
    data.text = True
    text = io.BytesIO()
    data.write(text)
    text.seek(0)
    try:
        return trimesh.load(text, file_type="ply", process=False, resolver=file_resolver(path))
    except Exception:  # what plyfile reads trimesh may still refuse; the caller names trimesh's first error
        return None


def _ply_own_lists(mesh: Mesh, tm) -> None:
    """Give a PLY the file's own vertices and faces back, with its polygons.

    trimesh splits a vertex for every per-corner UV (MeshLab's ``texcoord`` list) and cuts
    polygons into fans; here the file's ``vertex`` element and face lists come back as the
    topology, each polygon triangulated like an OBJ's (:func:`texgen.polygons.triangulate`) and
    kept for the OBJ export, and corners with equal UVs share one UV index. trimesh keeps the
    parsed elements in ``metadata["_ply_raw"]``.
    """
    raw = tm.metadata.get("_ply_raw", {})
    corners = next((lists for lists in (_ply_property(raw, "face", n) for n in PLY_FACE_LISTS) if lists is not None),
                   None)
    if corners is None:
        return
    sizes, flat = _ragged(corners)
    texcoord = _ply_property(raw, "face", "texcoord")
    if (sizes == 3).all() and texcoord is None:
        return  # trimesh kept the file's triangles as they are
    if (sizes < 3).any():
        face = int(np.flatnonzero(sizes < 3)[0])
        raise MeshError(f"{mesh.name}: face {face} of the PLY has {int(sizes[face])} corners; a face needs 3 or more")
    positions = np.stack([_ply_property(raw, "vertex", axis).reshape(-1).astype(np.float64) for axis in "xyz"], axis=1)
    if texcoord is not None:
        uv_sizes, uv_flat = _ragged(texcoord)
        if not np.array_equal(uv_sizes, 2 * sizes):
            return
        uvs, uv_index = np.unique(uv_flat.reshape(-1, 2).astype(np.float64), axis=0, return_inverse=True)
    elif not mesh.has_uvs:
        uvs, uv_index = None, None
    elif len(mesh.uvs) == len(positions):  # per-vertex UVs: trimesh kept the vertices as they are
        uvs, uv_index = mesh.uvs, flat
    else:
        return
    local = triangulate(positions[flat], sizes)
    corner = corner_rows(local, sizes)  # (F, 3) indices into ``flat``
    mesh.positions, mesh.faces = positions, flat[corner]
    if uvs is not None:
        mesh.uvs, mesh.uv_faces = uvs, uv_index.reshape(-1)[corner]
    normals = [_ply_property(raw, "vertex", axis) for axis in ("nx", "ny", "nz")]
    mesh.normals = mesh.normal_faces = None
    if all(n is not None for n in normals):
        mesh.normals = np.stack([n.reshape(-1).astype(np.float64) for n in normals], axis=1)
        mesh.normal_faces = mesh.faces.copy()
    if (sizes > 3).any():
        mesh.polygons, mesh.polygon_corners = sizes, local


def _ragged(lists: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P,) int64 lengths and (sum,) the values of a PLY list property, as (P, k) or an object array of arrays."""
    if lists.dtype == object:
        sizes = np.array([len(item) for item in lists], dtype=np.int64)
        return sizes, np.concatenate(list(lists)) if len(lists) else np.zeros(0)
    return np.full(len(lists), lists.shape[1], dtype=np.int64), lists.reshape(-1)


def _ply_property(raw: dict, element: str, name: str) -> Optional[np.ndarray]:
    """One property of an element in trimesh's parsed PLY (a dict of arrays from ASCII files, a
    structured array from binary ones); a list property as (N, length), or None."""
    data = raw.get(element, {}).get("data")
    if isinstance(data, dict):
        return np.asarray(data[name]) if name in data else None
    if data is None or name not in (data.dtype.names or ()):
        return None
    column = data[name]
    return column["f1"] if column.dtype.names else column


def apply_unwrap(mesh: Mesh, unwrap: str = "auto") -> Mesh:
    """Unwrap with xatlas when asked to (``always``) or when there are no UVs (``auto``)."""
    if unwrap not in ("auto", "always", "never"):
        raise MeshError(f"unwrap must be auto, always or never, got {unwrap!r}")
    if unwrap == "never" or (unwrap == "auto" and mesh.has_uvs):
        return mesh
    import xatlas

    ok = mesh.face_ok
    vmapping, indices, uvs = xatlas.parametrize(mesh.positions.astype(np.float32), mesh.faces[ok].astype(np.uint32))
    uv_faces = np.zeros_like(mesh.faces)
    uv_faces[ok] = indices.astype(np.int64)
    uvs = np.asarray(uvs, dtype=np.float64)
    if not ok.all():  # degenerate faces get a zero-area UV triangle at the first UV
        uv_faces[~ok] = 0
    mesh.uvs, mesh.uv_faces, mesh.unwrapped = uvs, uv_faces, True
    mesh.texture = mesh.texture_alpha = None
    note = ("the mesh had no UVs; unwrapped with xatlas" if unwrap == "auto"
            else "UVs replaced by a new xatlas unwrap (--unwrap always)")
    if mesh.material is not None and mesh.material.maps != mesh.material.without_maps().maps:
        kept = mesh.material.without_maps()
        gone = [name for name in mesh.material.maps if name not in kept.maps]
        note += f"; the material's {', '.join(gone)} maps followed the old UVs and are dropped"
        mesh.material = kept
    if mesh.source_glb is not None:  # the file's own UVs are gone: it cannot take the new map
        mesh.source_glb = None
        note += "; the GLB output is built from the mesh alone, without the rest of the file (nodes, skin, animations)"
    mesh.notes.append(note)
    log.info("%s: %s", mesh.name, note)
    return mesh
