"""What texgen reads in a mesh file, before a long job: ``texgen inspect``.

:func:`inspect_mesh` gathers the facts a pipeline checks an asset for (topology, UV islands,
how much of the texture the UVs use and where they overlap, its UV seams and how many lie on hard
edges (which ``texgen inpaint-seams`` leaves alone by default), the file's normals, texture and
material, whether the GLB output is the file itself (:attr:`texgen.mesh.Mesh.source_glb`), and
what loading changed); :func:`uv_layout` draws the UV layout over the texture.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from .mesh import Mesh, sorted_unique
from .seams import HARD_EDGE_DEG, edge_pairs, edge_turns
from .texels import TexelMap


def inspect_mesh(mesh: Mesh, texels: TexelMap | None = None) -> dict[str, Any]:
    """JSON-ready facts about ``mesh``; UV coverage and overlaps are measured on ``texels`` when given."""
    low, high = mesh.positions.min(axis=0), mesh.positions.max(axis=0)
    polygons = mesh.polygons
    facts: dict[str, Any] = {
        "name": mesh.name,
        "vertices": len(mesh.positions),
        "faces": len(mesh.faces) if polygons is None else len(polygons),
        "triangles": len(mesh.faces),
        "polygon_corners_max": 3 if polygons is None else int(polygons.max()),
        "degenerate_faces": int((~mesh.face_ok).sum()),
        "bounds": {"min": low.tolist(), "max": high.tolist()},
        "uvs": None,
        "normals": "file" if mesh.normals is not None else "none (the exports write smooth normals)",
        "texture": None if mesh.texture is None else {
            "width": mesh.texture.shape[1], "height": mesh.texture.shape[0], "alpha": mesh.texture_alpha is not None},
        "material": None,
        "glb_output": "the file itself, with the new base colour map" if mesh.source_glb is not None else
                      "built from the mesh",
        "notes": list(mesh.notes),
    }
    if mesh.has_uvs:
        pairs = edge_pairs(mesh)
        facts["uvs"] = {"count": len(mesh.uvs), "islands": len(sorted_unique(mesh.face_islands)),
                        "seam_edges": int(pairs.seam.sum()),
                        "seams_on_hard_edges": int((edge_turns(mesh, pairs)[pairs.seam] > HARD_EDGE_DEG).sum()),
                        "wrapped_from_other_tiles": mesh.uv_tiles_wrapped,
                        "second_set": None if mesh.uvs2 is None else len(mesh.uvs2)}
        if texels is not None:
            facts["uvs"] |= {"texture_size": texels.size, "coverage": texels.count / texels.size ** 2,
                             "overlap": float(texels.overlap.float().mean()) if texels.count else 0.0}
    if mesh.material is not None:
        material = mesh.material
        facts["material"] = {"name": material.name, "maps": sorted(material.maps),
                             "base_color_factor": material.base_color_factor.tolist(),
                             "metallic": material.metallic_factor, "roughness": material.roughness_factor,
                             "alpha_mode": material.alpha_mode, "double_sided": material.double_sided,
                             "gltf_extensions": material.extensions_used}
    return facts


def uv_layout(mesh: Mesh, texels: TexelMap) -> np.ndarray:
    """(N, N, 3) uint8: the texture (or grey) dimmed, each UV island tinted, overlapping texels red,
    and every UV triangle's edges drawn, at the texel map's size."""
    size = texels.size
    base = np.full((size, size, 3), 96, np.uint8) if mesh.texture is None else \
        cv2.resize(mesh.texture, (size, size), interpolation=cv2.INTER_AREA)
    image = (base.astype(np.float32) * 0.5).reshape(-1, 3)
    hue = (texels.island.numpy().astype(np.int64) * 0.61803398875 % 1.0 * 180).astype(np.uint8)
    tint = cv2.cvtColor(np.stack([hue, np.full_like(hue, 160), np.full_like(hue, 200)], axis=1)[None],
                        cv2.COLOR_HSV2RGB)[0]
    index = texels.index.numpy()
    image[index] = image[index] * 0.5 + tint * 0.5
    image[index[texels.overlap.numpy()]] = (230, 40, 40)
    image = np.ascontiguousarray(image.reshape(size, size, 3).astype(np.uint8))
    corners = mesh.corner_uvs()[mesh.face_ok]
    points = np.stack([corners[..., 0] * size, (1.0 - corners[..., 1]) * size], axis=-1)
    cv2.polylines(image, np.round(points * 4).astype(np.int32), isClosed=True, color=(255, 255, 255),
                  thickness=1, lineType=cv2.LINE_AA, shift=2)
    return image


__all__ = ["inspect_mesh", "uv_layout"]
