"""The glTF PBR material a mesh came with, so that the GLB export gives it back.

texgen makes (or repairs) the base colour map, ``Mesh.texture``. The rest of the material is the
user's work: the normal, metallic-roughness, occlusion and emissive maps, the factors, the alpha
mode and whether it is double-sided. A GLB read with one material keeps it here; the GLB export
writes it back around the new base colour map.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np

MAPS = ("metallic_roughness", "normal", "occlusion", "emissive")


@dataclass
class Material:
    """Factors as glTF stores them (linear); maps (H, W, C) uint8 as the file stores them, or None.

    base_color_factor : (4,) RGBA multiplied with the base colour map
    metallic_roughness : roughness in G, metallic in B (glTF's layout)
    normal : tangent-space normal map
    occlusion : ambient occlusion in R
    emissive : emitted colour, multiplied with ``emissive_factor`` (3,)
    """

    name: str = ""
    base_color_factor: np.ndarray = dataclasses.field(default_factory=lambda: np.ones(4))
    metallic_factor: float = 1.0
    roughness_factor: float = 1.0
    emissive_factor: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(3))
    metallic_roughness: Optional[np.ndarray] = None
    normal: Optional[np.ndarray] = None
    occlusion: Optional[np.ndarray] = None
    emissive: Optional[np.ndarray] = None
    alpha_mode: str = "OPAQUE"
    alpha_cutoff: float = 0.5
    double_sided: bool = False

    @classmethod
    def from_trimesh(cls, material) -> Optional["Material"]:
        """The material of a trimesh PBRMaterial (what glTF files load as); None for other kinds."""
        import trimesh

        if not isinstance(material, trimesh.visual.material.PBRMaterial):
            return None

        def factor(value, default: list[float]) -> np.ndarray:
            if value is None:
                return np.array(default, dtype=np.float64)
            value = np.asarray(value)  # trimesh keeps the base colour factor as uint8
            return value / 255.0 if value.dtype == np.uint8 else value.astype(np.float64)

        def image(value) -> Optional[np.ndarray]:
            if value is None:
                return None
            return np.asarray(value.convert("RGBA" if value.mode in ("RGBA", "LA", "P") else "RGB"))

        def number(value, default: float) -> float:
            return default if value is None else float(value)

        return cls(name=material.name or "", base_color_factor=factor(material.baseColorFactor, [1.0] * 4),
                   metallic_factor=number(material.metallicFactor, 1.0),
                   roughness_factor=number(material.roughnessFactor, 1.0),
                   emissive_factor=factor(material.emissiveFactor, [0.0] * 3),
                   metallic_roughness=image(material.metallicRoughnessTexture),
                   normal=image(material.normalTexture), occlusion=image(material.occlusionTexture),
                   emissive=image(material.emissiveTexture), alpha_mode=material.alphaMode or "OPAQUE",
                   alpha_cutoff=number(material.alphaCutoff, 0.5), double_sided=bool(material.doubleSided))

    def same_as(self, other: "Material") -> bool:
        """Whether ``other`` has the same factors, maps and settings (the name aside)."""
        return all(np.array_equal(a, b) if isinstance(a, np.ndarray) or isinstance(b, np.ndarray) else a == b
                   for a, b in ((getattr(self, f.name), getattr(other, f.name)) for f in dataclasses.fields(self)
                                if f.name != "name"))

    @property
    def maps(self) -> dict[str, np.ndarray]:
        """The maps the material has, by name (``MAPS``)."""
        return {name: getattr(self, name) for name in MAPS if getattr(self, name) is not None}

    def for_new_base_colour(self) -> "Material":
        """This material around a newly made base colour map: the old colour tint goes, the
        opacity stays."""
        factor = np.array([1.0, 1.0, 1.0, self.base_color_factor[3]])
        return dataclasses.replace(self, base_color_factor=factor)

    def without_maps(self) -> "Material":
        """This material without its maps (they follow UVs that are gone)."""
        return dataclasses.replace(self, **{name: None for name in MAPS})

    def gltf(self, base_colour: int, texture_of: dict[str, int]) -> dict:
        """The glTF material object: ``base_colour`` is the base colour map's texture index,
        ``texture_of`` the texture index of each map in ``maps``."""
        pbr = {"baseColorTexture": {"index": base_colour}, "metallicFactor": self.metallic_factor,
               "roughnessFactor": self.roughness_factor}
        if not np.array_equal(self.base_color_factor, np.ones(4)):
            pbr["baseColorFactor"] = [float(x) for x in self.base_color_factor]
        if "metallic_roughness" in texture_of:
            pbr["metallicRoughnessTexture"] = {"index": texture_of["metallic_roughness"]}
        material = {"name": self.name, "pbrMetallicRoughness": pbr, "doubleSided": self.double_sided,
                    "alphaMode": self.alpha_mode}
        if self.alpha_mode == "MASK":
            material["alphaCutoff"] = self.alpha_cutoff
        for name, key in (("normal", "normalTexture"), ("occlusion", "occlusionTexture"),
                          ("emissive", "emissiveTexture")):
            if name in texture_of:
                material[key] = {"index": texture_of[name]}
        if self.emissive_factor.any():
            material["emissiveFactor"] = [float(x) for x in self.emissive_factor]
        return material
