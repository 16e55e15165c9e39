"""A glTF file's JSON, read and written beside trimesh, for what trimesh does not read.

trimesh loads glTF geometry and the core PBR material. The rest that texgen keeps (the material's
normal scale, texture transforms and extensions: :mod:`texgen.material`; the second UV set:
:func:`texgen.mesh.load_mesh`) is read from the JSON here, and the GLB export packs its own.
"""

from __future__ import annotations

import copy
import json
import struct
from pathlib import Path
from typing import Optional

FLOAT = 5126  # glTF's componentType of 32-bit floats


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


def with_attribute_renamed(path: Path, tree: dict, old: str, new: str) -> Optional[bytes]:
    """The file at ``path`` (whose JSON is ``tree``) with the vertex attribute ``old`` renamed ``new``
    in every primitive, as bytes of the same format; None when no primitive has ``old``."""
    if not any(old in (primitive.get("attributes") or {}) for primitive in primitives(tree)):
        return None
    tree = copy.deepcopy(tree)
    for primitive in primitives(tree):
        attributes = primitive.get("attributes") or {}
        if old in attributes:
            attributes[new] = attributes.pop(old)
    data = path.read_bytes()
    if data[:4] != b"glTF":
        return json.dumps(tree).encode("utf-8")
    length = struct.unpack_from("<I", data, 12)[0]
    rest = data[20 + length:]
    binary = rest[8:8 + struct.unpack_from("<I", rest, 0)[0]] if len(rest) >= 8 and rest[4:8] == b"BIN\0" else b""
    return pack_glb(tree, binary)
