"""A glTF file's JSON, read and written beside trimesh, for what trimesh does not read.

trimesh loads glTF geometry and the core PBR material. The rest that texgen keeps (the material's
normal scale, texture transforms and extensions: :mod:`texgen.material`; the second UV set:
:func:`texgen.mesh.load_mesh`) is read from the JSON here, and the GLB export packs its own.
"""

from __future__ import annotations

import base64
import bisect
import copy
import json
import struct
from pathlib import Path
from typing import Optional
from urllib.parse import unquote, urlparse

import numpy as np

FLOAT = 5126  # glTF's componentType of 32-bit floats
TEXTURE_TRANSFORM = "KHR_texture_transform"
# extensions that hold no accessor index: a file that uses only these has its accessors' readers all in view
ACCESSOR_FREE_EXTENSIONS = ("KHR_materials_", "KHR_texture_", "EXT_texture_", "KHR_lights_punctual",
                            "KHR_mesh_quantization", "KHR_draco_mesh_compression")


def read_json(path: Path) -> dict:
    """The JSON of a .gltf file, or of a .glb file's first chunk ({} when it has none or it is not JSON)."""
    with open(path, "rb") as file:  # a GLB's JSON comes first: the binary chunk is not read
        data = file.read(20)
        if data[:4] == b"glTF":
            length, kind = struct.unpack_from("<I4s", data, 12) if len(data) == 20 else (0, b"")
            data = file.read(length) if kind == b"JSON" else b"{}"
        else:
            data += file.read()
    try:
        tree = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return {}
    return tree if isinstance(tree, dict) else {}


def primitives(tree: dict) -> list[dict]:
    """Every mesh primitive of a glTF JSON tree."""
    return [primitive for mesh in tree.get("meshes") or [] if isinstance(mesh, dict)
            for primitive in mesh.get("primitives") or [] if isinstance(primitive, dict)]


def stored_as_integers(tree: dict, attribute: str, normalized_only: bool = False) -> bool:
    """Whether some primitive stores the vertex attribute ``attribute`` as integers (quantized: glTF
    allows normalized unsigned bytes and shorts for UVs, KHR_mesh_quantization more), or only
    normalized ones; trimesh reads both without scaling them."""
    accessors = tree.get("accessors") or []
    for primitive in primitives(tree):
        index = (primitive.get("attributes") or {}).get(attribute)
        accessor = accessors[index] if isinstance(index, int) and 0 <= index < len(accessors) else {}
        if (isinstance(accessor, dict) and accessor.get("componentType", FLOAT) != FLOAT
                and (accessor.get("normalized") is True or not normalized_only)):
            return True
    return False


# the integer component types of accessors, and the vertex attributes whose normalized integers are dequantized
INTEGER_TYPES = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16}
ACCESSOR_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
DEQUANTIZED_ATTRIBUTES = ("POSITION", "NORMAL", "TANGENT", "TEXCOORD_")


def texture_uv_set(info: Optional[dict]) -> int:
    """The TEXCOORD_n a textureInfo reads (a texture transform may name another than its texCoord)."""
    if info is None:
        return 0
    transform = (info.get("extensions") or {}).get(TEXTURE_TRANSFORM)
    uv_set = (transform if isinstance(transform, dict) else {}).get("texCoord", info.get("texCoord", 0))
    return uv_set if isinstance(uv_set, int) else 0


def transform_matrix(transform) -> tuple[np.ndarray, np.ndarray]:
    """(2, 2) linear part and (2,) offset of a ``KHR_texture_transform``: uv' = linear @ uv + offset (the
    spec's T R S; the rotation turns as CesiumGltf's ``applyTransform`` turns it). A malformed one
    raises ValueError."""
    try:
        if not isinstance(transform, dict):
            raise TypeError
        offset, scale = (np.asarray(transform.get(key, default), dtype=np.float64).reshape(2)
                         for key, default in (("offset", [0.0, 0.0]), ("scale", [1.0, 1.0])))
        rotation = float(transform.get("rotation", 0.0))
    except (TypeError, ValueError):
        raise ValueError(f"malformed KHR_texture_transform {transform} (offset and scale take two numbers, "
                         "rotation one)") from None
    if not (np.isfinite(offset).all() and np.isfinite(scale).all() and np.isfinite(rotation)):
        raise ValueError(f"KHR_texture_transform {transform} is not finite")
    turn = np.array([[np.cos(rotation), np.sin(rotation)], [-np.sin(rotation), np.cos(rotation)]])
    return turn @ np.diag(scale), offset


def plain_integer_uvs(tree: dict) -> list[int]:
    """The accessors that primitives read as UVs (TEXCOORD_n) stored as integers that are not
    normalized: gltfpack's, which the materials' texture transforms scale into place."""
    return _attribute_accessors(tree, lambda name, accessor: name.startswith("TEXCOORD_")
                                and not accessor.get("normalized"))


def normalized_attributes(tree: dict) -> list[int]:
    """The accessors that primitives read as positions, normals, tangents or UVs stored as normalized
    integers (KHR_mesh_quantization; core glTF for UVs), which trimesh reads unscaled (32767 for 1.0)."""
    return _attribute_accessors(tree, lambda name, accessor: name.startswith(DEQUANTIZED_ATTRIBUTES)
                                and accessor.get("normalized") is True)


def _attribute_accessors(tree: dict, chosen) -> list[int]:
    """The integer accessors of primitive attributes (plain ones: no sparse part, a count) that
    ``chosen(name, accessor)`` picks, ascending."""
    accessors, found = tree.get("accessors") or [], set()
    for primitive in primitives(tree):
        for name, index in (primitive.get("attributes") or {}).items():
            accessor = accessors[index] if isinstance(index, int) and 0 <= index < len(accessors) else None
            if (isinstance(accessor, dict) and accessor.get("componentType") in INTEGER_TYPES
                    and accessor.get("type", "SCALAR") in ACCESSOR_WIDTH
                    and "sparse" not in accessor and isinstance(accessor.get("bufferView"), int)
                    and isinstance(accessor.get("count"), int) and accessor["count"] > 0 and chosen(name, accessor)):
                found.add(index)
    return sorted(found)


def dequantized_glb(data: bytes) -> bytes:
    """A GLB (one binary chunk, as :func:`self_contained_glb` makes it) whose quantized vertex data
    trimesh can read, in float32 accessors in new buffer views:

    - :func:`normalized_attributes` become c / max, at least -1, as glTF dequantizes them;
    - :func:`plain_integer_uvs` are read through the texture transform that every map on them shares
      (gltfpack's), which is then taken off those maps; UVs whose maps disagree stay integers.

    KHR_mesh_quantization is no longer required when no integer attribute is left. Raises ValueError
    naming the accessor when its data is not there (past its buffer's end, say) or a transform is malformed.
    """
    tree, stored = glb_parts(data)
    binary = bytearray(stored)  # the floats are appended to it; the integers are read from ``stored``
    views = tree.setdefault("bufferViews", [])
    baked = _uv_transforms(tree)
    for index in sorted(set(normalized_attributes(tree)) | set(baked)):
        accessor = tree["accessors"][index]
        kind = np.dtype(INTEGER_TYPES[accessor["componentType"]])
        width = ACCESSOR_WIDTH[accessor.get("type", "SCALAR")]
        view = views[accessor["bufferView"]]
        item, count = kind.itemsize * width, accessor["count"]
        stride = view.get("byteStride") or item
        start = view.get("byteOffset", 0) + accessor.get("byteOffset", 0)
        if start + (count - 1) * stride + item > len(stored):
            raise ValueError(f"accessor {index} reads past the end of its buffer")
        rows = np.lib.stride_tricks.as_strided(np.frombuffer(stored, np.uint8, (count - 1) * stride + item, start),
                                               (count, item), (stride, 1))
        values = np.ascontiguousarray(rows).view(kind).reshape(count, width).astype(np.float64)
        if accessor.get("normalized"):
            values = np.maximum(values / np.iinfo(kind).max, -1.0)
        else:  # UVs under their maps' transform, which is taken off the maps
            linear, offset = transform_matrix(baked[index][0])
            values = values @ linear.T + offset
            for info in baked[index][1]:
                del info["extensions"][TEXTURE_TRANSFORM]
                if not info["extensions"]:
                    del info["extensions"]
        values = values.astype(np.float32)
        start = _append_aligned(binary, values.tobytes())
        views.append({"buffer": 0, "byteOffset": start, "byteLength": values.nbytes})
        accessor.update(bufferView=len(views) - 1, componentType=FLOAT, byteOffset=0)
        accessor.pop("normalized", None)
        if "min" in accessor and "max" in accessor:
            accessor["min"], accessor["max"] = values.min(axis=0).tolist(), values.max(axis=0).tolist()
    if not any(stored_as_integers(tree, name) for name in _attribute_names(tree, DEQUANTIZED_ATTRIBUTES)):
        _drop_extension(tree, "KHR_mesh_quantization")
    _drop_unused_transform(tree)
    tree["buffers"] = [{"byteLength": len(binary)}]
    return pack_glb(tree, bytes(binary))


def _uv_transforms(tree: dict) -> dict[int, tuple[dict, list[dict]]]:
    """For each of the :func:`plain_integer_uvs` whose maps all read it through one texture transform
    (or none), that transform ({} for none) and the maps' textureInfos that carry it."""
    accessors, materials = tree.get("accessors") or [], tree.get("materials") or []
    found = {}
    for index in plain_integer_uvs(tree):
        transforms, infos = [], []
        for primitive in primitives(tree):
            uv_sets = [int(name[9:]) for name, value in (primitive.get("attributes") or {}).items()
                       if value == index and name.startswith("TEXCOORD_") and name[9:].isdigit()]
            material = primitive.get("material")
            material = materials[material] if isinstance(material, int) and 0 <= material < len(materials) else {}
            for info in _dicts_with(material if isinstance(material, dict) else {}, "index"):
                if texture_uv_set(info) in uv_sets:
                    transforms.append((info.get("extensions") or {}).get(TEXTURE_TRANSFORM) or {})
                    infos.append(info)
        if accessors[index].get("type") == "VEC2" and all(transform == (transforms or [{}])[0]
                                                          for transform in transforms):
            found[index] = ((transforms or [{}])[0], [info for info in infos if TEXTURE_TRANSFORM in
                                                     (info.get("extensions") or {})])
    return found


def _drop_extension(tree: dict, name: str) -> None:
    """Take ``name`` out of the file's extensionsUsed and extensionsRequired (and either list when it empties)."""
    for key in ("extensionsUsed", "extensionsRequired"):
        names = [used for used in tree.get(key, []) if used != name]
        if names:
            tree[key] = names
        else:
            tree.pop(key, None)


def _drop_unused_transform(tree: dict) -> None:
    """Take KHR_texture_transform out of the file's extension lists when no textureInfo carries one any more."""
    if not any(TEXTURE_TRANSFORM in node["extensions"] for node in _dicts_with(tree, "extensions", dict)):
        _drop_extension(tree, TEXTURE_TRANSFORM)


def _attribute_names(tree: dict, prefixes: tuple[str, ...]) -> set[str]:
    return {name for primitive in primitives(tree) for name in primitive.get("attributes") or {}
            if name.startswith(prefixes)}


def pack_glb(tree: dict, binary: bytes) -> bytes:
    """A GLB file of a JSON tree and its binary chunk (padded to 4 bytes, as glTF requires)."""
    header = json.dumps(tree, separators=(",", ":")).encode("utf-8")
    header += b" " * (-len(header) % 4)
    binary += b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(header) + (8 + len(binary) if binary else 0)
    chunks = [struct.pack("<4sII", b"glTF", 2, total), struct.pack("<I4s", len(header), b"JSON"), header]
    if binary:
        chunks += [struct.pack("<I4s", len(binary), b"BIN\0"), binary]
    return b"".join(chunks)


def with_attribute_renamed(data: bytes, tree: dict, old: str, new: str) -> Optional[bytes]:
    """A glTF or GLB file's bytes ``data`` (whose JSON is ``tree``) with the vertex attribute ``old``
    renamed ``new`` in every primitive, as bytes of the same format; None when no primitive has ``old``."""
    if not any(old in (primitive.get("attributes") or {}) for primitive in primitives(tree)):
        return None
    tree = copy.deepcopy(tree)
    for primitive in primitives(tree):
        attributes = primitive.get("attributes") or {}
        if old in attributes:
            attributes[new] = attributes.pop(old)
    if data[:4] != b"glTF":
        return json.dumps(tree).encode("utf-8")
    return pack_glb(tree, glb_binary(data))


def glb_binary(data: bytes) -> bytes:
    """The binary chunk of a GLB file (b"" when it has none)."""
    length = struct.unpack_from("<I", data, 12)[0]
    rest = data[20 + length:]
    return rest[8:8 + struct.unpack_from("<I", rest, 0)[0]] if len(rest) >= 8 and rest[4:8] == b"BIN\0" else b""


VIEW_ALIGNMENT = 16  # each buffer view of a rewritten binary chunk starts at a multiple of this many bytes


IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
               ".ktx2": "image/ktx2"}


def self_contained_glb(path: Path, tree: dict) -> Optional[bytes]:
    """The glTF or GLB file at ``path`` (its JSON ``tree``) as one GLB that holds all its data, for
    :func:`with_base_colour_map`: its buffers (a GLB's binary chunk, ``data:`` URIs, files beside
    it) joined into one binary chunk, and the images in files beside it embedded. None when a URI
    cannot be read here (a web address, a missing file) or the file is not glTF 2.0 as texgen reads it.
    """
    tree = copy.deepcopy(tree)
    data = path.read_bytes()
    joined, starts = bytearray(), []
    for index, buffer in enumerate(tree.get("buffers") or []):
        if not isinstance(buffer, dict):
            return None
        blob = glb_binary(data) if "uri" not in buffer and index == 0 and data[:4] == b"glTF" else \
            _read_uri(path.parent, buffer.get("uri"))
        if blob is None:
            return None
        starts.append(_append_aligned(joined, blob))
    views = tree.setdefault("bufferViews", [])
    for view in views:
        if not isinstance(view, dict) or not isinstance(view.get("buffer"), int) or view["buffer"] >= len(starts):
            return None
        view["byteOffset"] = starts[view["buffer"]] + view.get("byteOffset", 0)
        view["buffer"] = 0
    for image in tree.get("images") or []:
        uri = image.get("uri") if isinstance(image, dict) else None
        if not isinstance(uri, str) or uri.startswith("data:"):
            continue  # in a buffer view already, or self-contained
        blob = _read_uri(path.parent, uri)
        if blob is None:
            return None
        views.append({"buffer": 0, "byteOffset": _append_aligned(joined, blob), "byteLength": len(blob)})
        del image["uri"]
        image["bufferView"] = len(views) - 1
        image.setdefault("mimeType", IMAGE_TYPES.get(Path(unquote(uri)).suffix.lower(), "image/png"))
    tree["buffers"] = [{"byteLength": len(joined)}]
    return pack_glb(tree, bytes(joined))


def _append_aligned(binary: bytearray, blob: bytes) -> int:
    """Append ``blob`` to ``binary`` at the next multiple of ``VIEW_ALIGNMENT``; returns where it starts."""
    binary += b"\0" * (-len(binary) % VIEW_ALIGNMENT)
    start = len(binary)
    binary += blob
    return start


def _read_uri(folder: Path, uri) -> Optional[bytes]:
    """The bytes a glTF URI names: a base64 ``data:`` URI, or a file relative to ``folder``; None otherwise."""
    if not isinstance(uri, str):
        return None
    if uri.startswith("data:"):
        head, _, payload = uri.partition(",")
        try:
            return base64.b64decode(payload, validate=False) if head.endswith(";base64") else unquote(payload).encode()
        except ValueError:
            return None
    if urlparse(uri).scheme:  # a web address, or another scheme texgen does not fetch
        return None
    file = folder / unquote(uri)
    return file.read_bytes() if file.is_file() else None


def with_base_colour_map(data: bytes, png: bytes, sampler: dict, material: dict) -> bytes:
    """The GLB file ``data`` (one buffer, its binary chunk: :func:`self_contained_glb`) with ``png``
    as the base colour map, on TEXCOORD_0 with ``sampler``, of every material its triangle
    primitives use; primitives with none get ``material`` (a glTF material object, which this adds
    the map to), and their vertex colours (COLOR_0), which glTF multiplies with the map, are
    dropped, with their data where nothing else reads it (:func:`_free_accessors`). Everything else
    (nodes, skins, animations, morph targets, other maps and extensions)
    stays as it was.

    Where the old base colour image is read by those materials alone, the new one takes its
    place and its bytes, and the texture object that read it (its sampler too, unless shared);
    otherwise the new image and texture are added.
    """
    tree, binary = glb_parts(data)
    views = tree.setdefault("bufferViews", [])
    images = tree.setdefault("images", [])
    textures = tree.setdefault("textures", [])
    materials = tree.setdefault("materials", [])
    triangles = _triangle_primitives(tree)
    painted = _materials_of(triangles)
    samplers = tree.setdefault("samplers", [])
    replaceable = _replaceable_image(tree, painted)
    texture = None  # the texture object the new map takes over, if any
    if replaceable is None:
        views.append({"buffer": 0, "byteOffset": 0, "byteLength": len(png)})
        images.append({"bufferView": len(views) - 1, "mimeType": "image/png"})
        image = len(images) - 1
    else:
        image, readers = replaceable
        images[image] = {key: value for key, value in images[image].items() if key == "name"} | {
            "bufferView": images[image]["bufferView"], "mimeType": "image/png"}
        if len(readers) == 1 and "extensions" not in textures[readers[0]]:  # no other source (WebP, KTX2) to keep
            texture = readers[0]
    if texture is None:
        samplers.append(dict(sampler))
        textures.append({"sampler": len(samplers) - 1, "source": image})
        texture = len(textures) - 1
    else:
        old = textures[texture].get("sampler")
        if isinstance(old, int) and 0 <= old < len(samplers) and _values(textures, "sampler").count(old) == 1:
            samplers[old] = dict(sampler)
        else:
            samplers.append(dict(sampler))
            textures[texture]["sampler"] = len(samplers) - 1
    new_map = {"index": texture}
    # glTF multiplies the base colour by the vertex colours: the new map replaces them, and their data goes
    colours = {(primitive.get("attributes") or {}).pop("COLOR_0", None) for primitive in triangles}
    freed = _free_accessors(tree, {index for index in colours if isinstance(index, int)})
    if any(not isinstance(primitive.get("material"), int) for primitive in triangles):
        materials.append(copy.deepcopy(material))
        for primitive in triangles:
            primitive.setdefault("material", len(materials) - 1)
        painted.append(len(materials) - 1)
    for index in painted:
        materials[index].setdefault("pbrMetallicRoughness", {})["baseColorTexture"] = dict(new_map)
    _drop_unused_transform(tree)  # the old map's transform may have been the last one
    if freed:  # the views only those accessors read go; each later one moves up past those before it
        gone = sorted(freed)
        views[:] = [view for index, view in enumerate(views) if index not in freed]
        for node in _dicts_with(tree, "bufferView"):
            node["bufferView"] -= bisect.bisect_left(gone, node["bufferView"])
    # the binary chunk laid out anew, view by view: the new image's view holds the PNG
    laid_out = bytearray()
    for index, view in enumerate(views):
        start = view.get("byteOffset", 0)
        chunk = png if images[image]["bufferView"] == index else binary[start:start + view["byteLength"]]
        view["byteOffset"], view["byteLength"] = _append_aligned(laid_out, chunk), len(chunk)
    tree["buffers"][0]["byteLength"] = len(laid_out)
    return pack_glb(tree, bytes(laid_out))


def without_colour_tint(data: bytes) -> bytes:
    """The GLB file ``data`` with the base colour factor of the materials its triangle primitives use
    made white, their opacity kept (see :meth:`texgen.material.Material.for_new_base_colour`)."""
    tree, binary = glb_parts(data)
    materials = tree.get("materials") or []
    for index in _materials_of(_triangle_primitives(tree)):
        pbr = materials[index].get("pbrMetallicRoughness") or {}
        alpha = (pbr.get("baseColorFactor") or [1.0] * 4)[3]
        pbr.pop("baseColorFactor", None)
        if alpha != 1.0:
            pbr["baseColorFactor"] = [1.0, 1.0, 1.0, alpha]
    return pack_glb(tree, binary)


def _free_accessors(tree: dict, unread: set[int]) -> set[int]:
    """Make the accessors ``unread`` that nothing in the file reads any more accessors of zeros, with no
    data, and return the buffer views that only they read. Nothing is freed where the file uses an
    extension that may read accessors which texgen does not look for."""
    if not unread or any(not name.startswith(ACCESSOR_FREE_EXTENSIONS) for name in tree.get("extensionsUsed", [])):
        return set()
    read = set()
    for primitive in primitives(tree):
        read |= set((primitive.get("attributes") or {}).values()) | {primitive.get("indices")}
        for target in primitive.get("targets") or []:
            read |= set(target.values())
    read |= {skin.get("inverseBindMatrices") for skin in tree.get("skins") or []}
    read |= {sampler.get(key) for animation in tree.get("animations") or [] for sampler in animation.get("samplers")
             or [] for key in ("input", "output")}
    accessors = tree.get("accessors") or []
    views = set()
    for index in unread - read:
        if isinstance(index, int) and 0 <= index < len(accessors) and isinstance(accessors[index], dict):
            view = accessors[index].pop("bufferView", None)
            accessors[index].pop("byteOffset", None)
            if isinstance(view, int):
                views.add(view)
    return views - set(_values(tree, "bufferView"))


def glb_parts(data: bytes) -> tuple[dict, bytes]:
    """The JSON tree and the binary chunk of a GLB file."""
    return json.loads(data[20:20 + struct.unpack_from("<I", data, 12)[0]]), glb_binary(data)


def _triangle_primitives(tree: dict) -> list[dict]:
    return [primitive for primitive in primitives(tree) if primitive.get("mode", 4) == 4]


def _materials_of(triangles: list[dict]) -> list[int]:
    """The indices of the materials that ``triangles`` (primitives) use, ascending."""
    return sorted({primitive["material"] for primitive in triangles if isinstance(primitive.get("material"), int)})


def _replaceable_image(tree: dict, painted: list[int]) -> Optional[tuple[int, list[int]]]:
    """The image that the base colour maps of the ``painted`` materials read, when they all read one in
    the binary chunk and nothing else in the file reads it or its buffer view, and the textures that
    read it; None otherwise."""
    materials, textures, images = tree["materials"], tree["textures"], tree["images"]
    infos = [(materials[index].get("pbrMetallicRoughness") or {}).get("baseColorTexture") for index in painted]
    if not painted or not all(isinstance(info, dict) and isinstance(info.get("index"), int)
                              and 0 <= info["index"] < len(textures) for info in infos):
        return None
    sources = {textures[info["index"]].get("source") for info in infos}
    if len(sources) != 1 or not isinstance(image := sources.pop(), int) or not 0 <= image < len(images):
        return None
    view = images[image].get("bufferView")
    if not isinstance(view, int) or _values(tree, "bufferView").count(view) != 1:
        return None  # an image in a URI, or a view that an accessor or another image reads too
    readers = {index for index, texture in enumerate(textures) if image in _values(texture, "source")}
    uses = [info for material in materials for info in _dicts_with(material, "index") if info["index"] in readers]
    if len(uses) != len(painted) or any(all(use is not info for info in infos) for use in uses):
        return None  # another map (emissive, say) or another material reads the image too
    return image, sorted(readers)


def _dicts_with(tree, key: str, kind: type = int) -> list[dict]:
    """Every dict anywhere in a JSON tree that has ``key`` (a value of ``kind``)."""
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get(key), kind):
                found.append(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _values(tree, key: str) -> list[int]:
    """The int values of ``key`` anywhere in a JSON tree."""
    return [node[key] for node in _dicts_with(tree, key)]
