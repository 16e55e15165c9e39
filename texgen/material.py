"""The glTF PBR material a mesh came with, so that the GLB export gives it back.

texgen makes (or repairs) the base colour map, ``Mesh.texture``. The rest of the material is the
user's work: the normal, metallic-roughness, occlusion and emissive maps, the factors, the alpha
mode and whether it is double-sided, and from the file's glTF JSON (which trimesh does not read
there) the normal scale, occlusion strength, texture transforms and the material's extensions. A
GLB read with one material keeps it here; the GLB export writes it back around the new base
colour map. Maps on TEXCOORD_1 stay when the mesh keeps that UV set (``Mesh.uvs2``); maps on
UV sets it does not keep are dropped with a note.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from .gltf_json import TEXTURE_TRANSFORM, primitives, texture_uv_set, transform_matrix

MAPS = ("metallic_roughness", "normal", "occlusion", "emissive")
# where each map's textureInfo sits in a glTF material: (parent key or None, key)
GLTF_MAP_KEYS = {"metallic_roughness": ("pbrMetallicRoughness", "metallicRoughnessTexture"),
                 "normal": (None, "normalTexture"), "occlusion": (None, "occlusionTexture"),
                 "emissive": (None, "emissiveTexture")}
REPEAT, MIRRORED_REPEAT, CLAMP_TO_EDGE = 10497, 33648, 33071  # glTF's wrap modes
SAMPLER = {"magFilter": 9729, "minFilter": 9987, "wrapS": REPEAT, "wrapT": REPEAT}  # linear, mipmapped, repeating
MAX_PLAIN_SIZE = 8192  # the largest side of a base colour map resampled onto the plain UVs (on_plain_uvs)


@dataclass
class Material:
    """Factors as glTF stores them (linear); maps (H, W, C) uint8 as the file stores them, or None.

    base_color_factor : (4,) RGBA multiplied with the base colour map
    metallic_roughness : roughness in G, metallic in B (glTF's layout)
    normal : tangent-space normal map
    occlusion : ambient occlusion in R
    emissive : emitted colour, multiplied with ``emissive_factor`` (3,)
    normal_scale, occlusion_strength : the normal map's scale and the occlusion map's strength
    map_transforms : the ``KHR_texture_transform`` of each map that has one, as the file gives it
    map_uv_sets : the UV set of each map that reads another than TEXCOORD_0 (1: ``Mesh.uvs2``)
    map_samplers : the glTF sampler (filters, wrap modes) of each map whose texture names one other
        than ``SAMPLER``, which the GLB export gives the rest
    extensions : the material's own glTF extensions that hold no texture (``KHR_materials_emissive_strength``,
        ``KHR_materials_ior``...), as the file gives them; ``required_extensions`` those of them the file requires
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
    normal_scale: float = 1.0
    occlusion_strength: float = 1.0
    map_transforms: dict[str, dict] = dataclasses.field(default_factory=dict)
    map_uv_sets: dict[str, int] = dataclasses.field(default_factory=dict)
    map_samplers: dict[str, dict] = dataclasses.field(default_factory=dict)
    extensions: dict[str, dict] = dataclasses.field(default_factory=dict)
    required_extensions: tuple[str, ...] = ()

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

    def with_gltf_details(self, gltf: dict, notes: list[str], uv_sets: int = 1) -> "Material":
        """This material with what trimesh does not read from the file's glTF JSON ``gltf``: the normal
        scale, the occlusion strength, the maps' texture transforms, UV sets and samplers, and the
        material's extensions.

        The file's material is the one named like this one, else the one material its meshes use. Maps
        on a UV set the mesh does not keep (it keeps ``uv_sets``: TEXCOORD_0 and maybe TEXCOORD_1) are
        dropped, and so are extensions that hold textures; ``notes`` says which. Where the file's
        meshes use several materials that differ in these details, only the dropping is done.
        """
        sources = _sources(gltf, self.name)
        if not sources:
            return self
        changes: dict = {}
        for name in self.maps:
            uv_set = max(texture_uv_set(_texture_info(source, name)) for source in sources)
            if uv_set >= uv_sets:
                changes[name] = None
                notes.append(f"the material's {name} map reads TEXCOORD_{uv_set}, a UV set texgen does not keep; "
                             "it is left out of the exports")
        details = [_details(gltf, source, set(self.maps) - set(changes)) for source in sources]
        if any(detail != details[0] for detail in details[1:]):
            # maps that read TEXCOORD_1 in one of the materials are dropped: texgen cannot say which they read
            changes |= {name: None for name in set(self.maps) - set(changes)
                        if any(name in detail["map_uv_sets"] for detail in details)}
            notes.append("the objects' glTF materials differ in details texgen keeps only when they agree (normal "
                         "scale, occlusion strength, texture transforms, extensions, maps on TEXCOORD_1); those are "
                         "left out")
            return dataclasses.replace(self, **changes)
        for key, extension in (sources[0].get("extensions") or {}).items():
            if _holds_texture(extension):
                notes.append(f"the material's {key} holds textures, which texgen does not carry; it is left out")
        required = tuple(key for key in gltf.get("extensionsRequired") or [] if key in details[0]["extensions"])
        return dataclasses.replace(self, **changes, **details[0], required_extensions=required)

    @property
    def extensions_used(self) -> list[str]:
        """The glTF extensions :meth:`gltf` writes."""
        return sorted(set(self.extensions) | ({TEXTURE_TRANSFORM} if self.map_transforms else set()))

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

    def without_maps(self, uv_set: int = 0) -> "Material":
        """This material without its maps that read UV set ``uv_set`` (they follow UVs that are gone)."""
        gone = [name for name in self.maps if self.map_uv_sets.get(name, 0) == uv_set]
        return dataclasses.replace(self, **{name: None for name in gone},
                                   **{field: {k: v for k, v in getattr(self, field).items() if k not in gone}
                                      for field in ("map_transforms", "map_uv_sets", "map_samplers")})

    def gltf(self, base_colour: int, texture_of: dict[str, int]) -> dict:
        """The glTF material object: ``base_colour`` is the base colour map's texture index,
        ``texture_of`` the texture index of each map in ``maps``."""
        pbr = {"baseColorTexture": {"index": base_colour}, "metallicFactor": self.metallic_factor,
               "roughnessFactor": self.roughness_factor}
        if not np.array_equal(self.base_color_factor, np.ones(4)):
            pbr["baseColorFactor"] = [float(x) for x in self.base_color_factor]
        material = {"name": self.name, "pbrMetallicRoughness": pbr, "doubleSided": self.double_sided,
                    "alphaMode": self.alpha_mode}
        if self.alpha_mode == "MASK":
            material["alphaCutoff"] = self.alpha_cutoff
        for name, (parent, key) in GLTF_MAP_KEYS.items():
            if name in texture_of:
                info = {"index": texture_of[name]}
                if name == "normal" and self.normal_scale != 1.0:
                    info["scale"] = self.normal_scale
                if name == "occlusion" and self.occlusion_strength != 1.0:
                    info["strength"] = self.occlusion_strength
                if self.map_uv_sets.get(name, 0):
                    info["texCoord"] = self.map_uv_sets[name]
                if name in self.map_transforms:
                    info["extensions"] = {TEXTURE_TRANSFORM: self.map_transforms[name]}
                (material if parent is None else material[parent])[key] = info
        if self.emissive_factor.any():
            material["emissiveFactor"] = [float(x) for x in self.emissive_factor]
        if self.extensions:
            material["extensions"] = self.extensions
        return material


@dataclass(frozen=True)
class ColourMapping:
    """How a glTF material's base colour map lies on the mesh's UVs.

    uv_set : the TEXCOORD_n it reads
    transform : its ``KHR_texture_transform`` as the file gives it, {} without one; None where the file's
        materials map it in different ways
    wrap : its sampler's (wrapS, wrapT), glTF's codes (REPEAT where it names none)
    """

    uv_set: int = 0
    transform: Optional[dict] = dataclasses.field(default_factory=dict)
    wrap: tuple[int, int] = (REPEAT, REPEAT)


def base_colour_mapping(gltf: dict, name: str) -> ColourMapping:
    """How the base colour map of the glTF material named ``name`` (see :meth:`Material.with_gltf_details`)
    is mapped: the UV set it reads, its texture transform and its sampler's wrap modes."""
    infos = [(source.get("pbrMetallicRoughness") or {}).get("baseColorTexture") for source in _sources(gltf, name)]
    infos = [info for info in infos if isinstance(info, dict)]
    if not infos:
        return ColourMapping()
    uv_set = max(texture_uv_set(info) for info in infos)
    transforms = [_base_transform(info) for info in infos]
    wraps = [_wrap_modes(gltf, info) for info in infos]
    # the wrap modes matter where a transform takes the UVs past the map's edges
    if any(transform != transforms[0] for transform in transforms) or (transforms[0] and len(set(wraps)) > 1):
        return ColourMapping(uv_set, None, wraps[0])
    return ColourMapping(uv_set, transforms[0], wraps[0])


def _base_transform(info: dict):
    """A textureInfo's ``KHR_texture_transform`` less its texCoord (the UV set is told apart), {} where
    it moves nothing; a malformed one as it is, for :func:`on_plain_uvs` to name."""
    transform = (info.get("extensions") or {}).get(TEXTURE_TRANSFORM) or {}
    if not isinstance(transform, dict):
        return transform
    transform = {key: value for key, value in transform.items() if key != "texCoord"}
    identity = {"offset": [0.0, 0.0], "rotation": 0.0, "scale": [1.0, 1.0]}
    return {} if all(transform.get(key, value) == value for key, value in identity.items()) else transform


def on_plain_uvs(image: np.ndarray, transform: dict, wrap: tuple[int, int]) -> np.ndarray:
    """``image`` (H, W) or (H, W, C), a map read through a ``KHR_texture_transform`` with the sampler's
    ``wrap`` modes (glTF's codes), resampled (bilinear) so that it reads on the plain UVs. A malformed
    transform raises ValueError.

    The result has as many texels along u and v as the map has pixels along the lines they map to, so
    that a map tiled several times across the square keeps its detail (at most MAX_PLAIN_SIZE a side).
    glTF UVs run from the image's top-left corner.
    """
    linear, offset = transform_matrix(transform)  # uv' = linear @ uv + offset
    height, width = image.shape[:2]
    # a step along u or v crosses this many of the map's pixels per unit: as many texels keep its detail
    pixels = np.hypot(linear[0] * width, linear[1] * height)
    out_width, out_height = (max(1, min(MAX_PLAIN_SIZE, round(float(count)))) for count in pixels)
    # the map's continuous pixel coordinates at every texel centre, in float32 (an 8192^2 map's are 256 MiB each)
    u = ((np.arange(out_width) + 0.5) / out_width).astype(np.float32)[None, :]
    v = ((np.arange(out_height) + 0.5) / out_height).astype(np.float32)[:, None]
    x, y = (float(linear[row, 0] * side) * u + float(linear[row, 1] * side) * v + float(offset[row] * side)
            for row, side in ((0, width), (1, height)))
    (x, border), (y, _) = _wrapped(x, width, wrap[0]), _wrapped(y, height, wrap[1])
    if wrap[0] != wrap[1]:  # OpenCV takes one border mode: the coordinates are already wrapped into the image
        border = cv2.BORDER_REPLICATE
    return cv2.remap(image, x, y, cv2.INTER_LINEAR, borderMode=border)


def _wrapped(position: np.ndarray, size: int, mode: int) -> tuple[np.ndarray, int]:
    """Continuous image coordinates (float32, texel edges at whole numbers) wrapped by a glTF wrap mode,
    as the pixel coordinates ``cv2.remap`` reads (pixel centres at whole numbers), and the border mode
    that interpolates across the image's edge as the wrap mode does."""
    if mode == CLAMP_TO_EDGE:
        return position - 0.5, cv2.BORDER_REPLICATE
    if mode == MIRRORED_REPEAT:
        folded = np.mod(position, 2 * size)
        return np.where(folded > size, 2 * size - folded, folded) - 0.5, cv2.BORDER_REFLECT
    return np.mod(position, size) - 0.5, cv2.BORDER_WRAP


def _sources(gltf: dict, name: str) -> list[dict]:
    """The glTF materials that a material named ``name`` came from: the one of that name, else those
    the file's meshes use."""
    materials = [m for m in gltf.get("materials") or [] if isinstance(m, dict)]
    used = sorted({p["material"] for p in primitives(gltf) if isinstance(p.get("material"), int)
                   and 0 <= p["material"] < len(materials)})
    named = [index for index in used if name and materials[index].get("name") == name]
    return [materials[index] for index in (named if len(named) == 1 else used)]


def _texture_info(material: dict, name: str) -> Optional[dict]:
    """The glTF textureInfo of the map ``name`` in a glTF material, None when it has none."""
    parent, key = GLTF_MAP_KEYS[name]
    info = (material.get(parent) or {} if parent else material).get(key)
    return info if isinstance(info, dict) else None


def _wrap_modes(gltf: dict, info: dict) -> tuple[int, int]:
    """(wrapS, wrapT) of the sampler of the texture a textureInfo names; REPEAT where it names none."""
    sampler = _sampler(gltf, info) or SAMPLER
    return tuple(mode if mode in (REPEAT, MIRRORED_REPEAT, CLAMP_TO_EDGE) else REPEAT
                 for mode in (sampler.get("wrapS", REPEAT), sampler.get("wrapT", REPEAT)))


def _sampler(gltf: dict, info: Optional[dict]) -> Optional[dict]:
    """The sampler of the texture a textureInfo names; None when it names none (glTF's default) or ``SAMPLER``."""
    textures, samplers = gltf.get("textures") or [], gltf.get("samplers") or []
    index = (info or {}).get("index")
    texture = textures[index] if isinstance(index, int) and 0 <= index < len(textures) else {}
    sampler = texture.get("sampler") if isinstance(texture, dict) else None
    if isinstance(sampler, int) and 0 <= sampler < len(samplers) and isinstance(samplers[sampler], dict):
        sampler = {key: value for key, value in samplers[sampler].items() if key != "name"}
        return None if sampler == SAMPLER else sampler
    return None


def _number(value, default: float) -> float:
    """A glTF number, or ``default`` when the file gives none (or something else)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _holds_texture(value) -> bool:
    """Whether a glTF extension object refers to a texture (a textureInfo: a dict with an "index")."""
    if isinstance(value, dict):
        return "index" in value or any(_holds_texture(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_texture(v) for v in value)
    return False


def _details(gltf: dict, material: dict, maps: set[str]) -> dict:
    """The fields of :class:`Material` that a glTF material (of the file ``gltf``) gives and trimesh
    does not read, for the maps ``maps`` that are kept."""
    transforms, uv_sets, samplers = {}, {}, {}
    for name in sorted(maps):
        info = _texture_info(material, name)
        transform = ((info or {}).get("extensions") or {}).get(TEXTURE_TRANSFORM)
        if isinstance(transform, dict):
            transforms[name] = transform
        if texture_uv_set(info):
            uv_sets[name] = texture_uv_set(info)
        sampler = _sampler(gltf, info)
        if sampler is not None:
            samplers[name] = sampler
    extensions = {key: value for key, value in (material.get("extensions") or {}).items()
                  if isinstance(value, dict) and not _holds_texture(value)}
    normal, occlusion = _texture_info(material, "normal") or {}, _texture_info(material, "occlusion") or {}
    return {"normal_scale": _number(normal.get("scale"), 1.0),
            "occlusion_strength": _number(occlusion.get("strength"), 1.0),
            "map_transforms": transforms, "map_uv_sets": uv_sets, "map_samplers": samplers, "extensions": extensions}
