"""The result every job returns: the mesh as given, its texture, a report and a preview."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .gltf_json import without_colour_tint
from .mesh import Mesh


@dataclass
class TextureResult:
    """mesh : the input mesh in its own frame, UVs unchanged
    texture : (N, N, 3) uint8 base-colour map for ``mesh``'s UVs
    report : JSON-serialisable facts about the run (settings, coverage, seam ratio, timings...)
    preview : (H, W, 3) uint8 contact sheet
    """

    mesh: Mesh
    texture: np.ndarray
    report: dict[str, Any] = field(default_factory=dict)
    preview: np.ndarray | None = None


def with_new_base_colour(mesh: Mesh) -> Mesh:
    """``mesh`` for a newly made base colour map: its glTF material, and those of the GLB file it is
    written back into (``Mesh.source_glb``), lose their colour tint (the new map is the colour) and
    keep the rest."""
    return dataclasses.replace(
        mesh, material=None if mesh.material is None else mesh.material.for_new_base_colour(),
        source_glb=None if mesh.source_glb is None else without_colour_tint(mesh.source_glb))
