"""Outputs: the textured mesh as GLB and OBJ, the texture, the report and a preview, written atomically.

Every file is written through a temporary file in the target's own folder, flushed to disk and
renamed over the target, so a reader never sees half a file. :func:`write_files` extends this
to a group of files: all temporary files are written first, and if anything fails, whatever the
call already put in place is removed again.

UV conventions: ``Mesh.uvs`` have v pointing up (OBJ's convention, written to OBJ unchanged);
glTF's v points down, so the GLB stores ``1 - v``.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import math
import os
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Union

import numpy as np

from .errors import TexgenError
from .gltf_json import FLOAT, pack_glb, with_base_colour_map
from .material import SAMPLER, Material
from .mesh import Mesh, row_groups
from .polygons import polygon_faces
from .result import TextureResult

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

PathLike = Union[str, Path]
TEMP_SUFFIX = ".tmp"
ROUGHNESS = 1.0  # a neutral, matte PBR material: the texture alone gives the look
OUTPUT_KINDS = ("glb", "obj", "mtl", "albedo", "report", "preview")


# ---------------------------------------------------------------------- atomic files


def atomic_write(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same folder, fsync, rename.

    An OSError (full disk, read-only folder...) raises TexgenError naming ``path``; no
    temporary file is left behind, whatever the failure.
    """
    path = Path(path)
    _commit(_write_temp(path, data), path)


def write_files(files: dict[Path, bytes], overwrite: bool = False) -> None:
    """Write several files as one job: either all of them end up in place or none of them.

    Refuses (TexgenError naming the file) when a target exists and ``overwrite`` is False,
    before writing anything. On failure, the temporary files and the targets already
    renamed into place by this call are removed, then the error is raised.
    """
    if not overwrite:
        refuse_existing(files)
    temps: dict[Path, Path] = {}
    placed: list[Path] = []
    try:
        for path, data in files.items():
            temps[path] = _write_temp(path, data)
        for path, temp in temps.items():
            _commit(temp, path)
            placed.append(path)
    except BaseException:
        for temp in temps.values():
            temp.unlink(missing_ok=True)
        for path in placed:
            path.unlink(missing_ok=True)
        raise


def _write_temp(path: Path, data: bytes) -> Path:
    """Write ``data`` to a new hidden temporary file beside ``path`` and fsync it; return its path."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException as exc:
        temp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _write_error(path, exc) from exc
        raise
    return temp


def _commit(temp: Path, path: Path) -> None:
    """Rename ``temp`` over ``path`` and fsync the folder; remove ``temp`` on failure."""
    try:
        os.replace(temp, path)
    except BaseException as exc:
        temp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _write_error(path, exc) from exc
        raise
    try:
        folder = os.open(path.parent, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename is done either way
        return
    try:
        os.fsync(folder)
    except OSError:
        pass
    finally:
        os.close(folder)


def _write_error(path: Path, exc: OSError) -> TexgenError:
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        hint = "free some disk space or write to another folder"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "check the folder's permissions or write to another folder"
    elif exc.errno == errno.EISDIR:
        hint = "a folder has that name; remove it or choose another name"
    else:
        hint = "check the output folder"
    return TexgenError(f"cannot write {path}: {reason}; {hint}")


# ---------------------------------------------------------------------- job outputs


def output_paths(out_dir: PathLike, name: str) -> dict[str, Path]:
    """The file of each output kind (see ``OUTPUT_KINDS``) for ``name`` in ``out_dir``."""
    out_dir = Path(out_dir)
    return {"glb": out_dir / f"{name}.glb", "obj": out_dir / f"{name}.obj", "mtl": out_dir / f"{name}.mtl",
            "albedo": out_dir / f"{name}_albedo.png", "report": out_dir / f"{name}_report.json",
            "preview": out_dir / f"{name}_preview.png"}


def refuse_existing(paths: Iterable[Path]) -> None:
    """Raise TexgenError naming the first of ``paths`` that exists (jobs call this before working)."""
    for path in paths:
        if path.exists():
            raise TexgenError(f"{path} already exists; choose another output folder or name, "
                              "or pass overwrite=True (--overwrite) to replace it")


def safe_name(name: str) -> str:
    """``name`` reduced to a plain file stem (letters, digits, ``.``, ``_``, ``-``) that OBJ/MTL can reference."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return cleaned or "texture"


def write_outputs(result: TextureResult, out_dir: PathLike, name: str | None = None,
                  overwrite: bool = False) -> dict[str, Path]:
    """Write a job's files into ``out_dir`` and return them by kind (``OUTPUT_KINDS``).

    ``NAME.glb`` (texture embedded; a GLB painted whole, ``Mesh.source_glb``, is that file with the new
    map, :func:`texgen.gltf_json.with_base_colour_map`), ``NAME.obj`` + ``NAME.mtl`` + ``NAME_albedo.png`` (with the
    input's alpha when its base colour had one, ``Mesh.texture_alpha``),
    ``NAME_report.json`` and ``NAME_preview.png``; NAME defaults to the mesh's name. Every
    file is encoded before anything is written, then all are written as one job
    (:func:`write_files`): nothing is overwritten unless ``overwrite``, nothing half-done stays.
    """
    mesh = result.mesh
    mesh.require_uvs()
    name = safe_name(name or mesh.name)
    paths = output_paths(out_dir, name)
    texture = _rgb8(result.texture, "texture")
    preview = _rgb8(result.preview, "preview") if result.preview is not None else contact_sheet(
        [("texture", texture)], 1, tile_size=512)
    albedo = png_bytes(texture if mesh.texture_alpha is None else _with_alpha(texture, mesh.texture_alpha))
    tint = (1.0, 1.0, 1.0) if mesh.material is None else mesh.material.base_color_factor[:3]
    data = {"glb": _glb(mesh, albedo, name), "obj": obj_bytes(mesh, paths["mtl"].name, name),
            "mtl": mtl_bytes(name, paths["albedo"].name, tint), "albedo": albedo,
            "report": report_bytes(result.report), "preview": png_bytes(preview)}
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise TexgenError(f"output folder {folder} is a file; choose a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(folder, exc) from exc
    write_files({paths[kind]: data[kind] for kind in OUTPUT_KINDS}, overwrite=overwrite)
    return paths


def _with_alpha(texture: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """(N, M, 4) uint8: ``texture`` (N, M, 3) with the mesh's alpha (H, W) resampled to its size."""
    from PIL import Image

    if alpha.shape != texture.shape[:2]:
        alpha = np.asarray(Image.fromarray(alpha).resize(texture.shape[1::-1], Image.BILINEAR))
    return np.concatenate([texture, alpha[:, :, None]], axis=2)


# ---------------------------------------------------------------------- encoders


def png_bytes(image: np.ndarray) -> bytes:
    """Encode an (H, W, 3) or (H, W, 4) uint8 image as PNG."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def report_bytes(report: dict[str, Any]) -> bytes:
    """The report as indented JSON; numpy values become plain numbers, NaN/inf become null."""
    try:
        text = json.dumps(_jsonable(report), indent=2, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TexgenError(f"the report cannot be written as JSON: {exc}") from exc
    return (text + "\n").encode("utf-8")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def obj_bytes(mesh: Mesh, mtl_name: str, material: str) -> bytes:
    """Wavefront OBJ text: the welded ``v`` positions, the ``vt`` UVs, the file's ``vn`` normals when
    the mesh kept them, and the ``f v/vt[/vn]`` corners as stored.

    A mesh read from an OBJ or PLY with polygons gets its polygons back (``Mesh.polygons``), each
    except those its UVs no longer allow (a new unwrap that cut it along a diagonal): their triangles.
    Numbers are written with Python's shortest round-trip repr, so loading gives back the
    exact float64 values.
    """
    corners, sizes = _polygon_corners(mesh)
    lines = [f"# texgen: {len(mesh.positions)} vertices, {len(mesh.uvs)} UVs, {len(sizes)} faces",
             f"mtllib {mtl_name}", f"o {material}"]
    lines += [f"v {x!r} {y!r} {z!r}" for x, y, z in mesh.positions.tolist()]
    lines += [f"vt {u!r} {v!r}" for u, v in mesh.uvs.tolist()]
    if mesh.normals is not None:
        lines += [f"vn {x!r} {y!r} {z!r}" for x, y, z in mesh.normals.tolist()]
    lines.append(f"usemtl {material}")
    words = ["/".join(map(str, corner)) for corner in (corners + 1).tolist()]
    ends = np.cumsum(sizes).tolist()
    lines += ["f " + " ".join(words[end - size:end]) for end, size in zip(ends, sizes.tolist())]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _polygon_corners(mesh: Mesh) -> tuple[np.ndarray, np.ndarray]:
    """The faces to write: (C, K) int64 (position, UV[, normal]) index of each corner, and (P,) corners
    per face.

    The polygons of ``mesh.polygons`` whose triangles still agree on every corner, the triangles of
    the others (:func:`texgen.polygons.polygon_faces`); the triangles of a mesh without polygons.
    """
    indices = corner_indices(mesh)  # (F, 3, K)
    sizes = mesh.polygons
    if sizes is None or mesh.polygon_corners is None or int((sizes - 2).sum()) != len(mesh.faces):
        return indices.reshape(-1, indices.shape[2]), np.full(len(mesh.faces), 3, dtype=np.int64)
    return polygon_faces(indices, mesh.polygon_corners, sizes)


def mtl_bytes(material: str, texture_name: str, tint: Iterable[float] = (1.0, 1.0, 1.0)) -> bytes:
    """An MTL with one matte material whose diffuse map is ``texture_name``, multiplied by ``tint``
    (the base colour factor of the mesh's glTF material, when it keeps one)."""
    kd = " ".join(f"{float(x):g}" for x in tint)
    return (f"newmtl {material}\nKa 1 1 1\nKd {kd}\nKs 0 0 0\nNs 0\nd 1\nillum 1\n"
            f"map_Kd {texture_name}\n").encode("utf-8")


def corner_indices(mesh: Mesh) -> np.ndarray:
    """(F, 3, K) int64 what each face corner indexes: its position and UV, and its normal when the
    mesh keeps the file's normals (K = 2 or 3)."""
    mesh.require_uvs()
    columns = [mesh.faces, mesh.uv_faces] + ([mesh.normal_faces] if mesh.normals is not None else [])
    return np.stack(columns, axis=2)


def gltf_vertices(mesh: Mesh) -> tuple[np.ndarray, np.ndarray]:
    """Split the mesh's vertices only as far as glTF needs: one per distinct (position, UV[, normal]
    [, second-set UV]).

    returns : corners (K, 2 to 4) int64 (position, UV[, normal][, second-set UV] index) of each glTF
        vertex, in order of first appearance in ``faces``, and triangles (F, 3) int64 into those K
        vertices. A mesh loaded from a GLB has one per vertex, so it keeps its vertices and their order.
    """
    indices = corner_indices(mesh)
    if mesh.uvs2 is not None:
        indices = np.concatenate([indices, mesh.uv2_faces[:, :, None]], axis=2)
    corners = indices.reshape(-1, indices.shape[2])
    groups = row_groups(corners)
    _, first = np.unique(groups, return_index=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return corners[first[order]], rank[groups].reshape(-1, 3)


def _glb(mesh: Mesh, texture_png: bytes, name: str) -> bytes:
    """The GLB output: the mesh's own glTF file with the new map when it has one (``Mesh.source_glb``),
    else one built from the mesh. A file that cannot take the map (glTF that texgen misreads) falls
    back to the built one, with a warning: the painting is never lost to it."""
    if mesh.source_glb is not None:
        try:
            return with_base_colour_map(mesh.source_glb, texture_png, SAMPLER, _plain_material(name).gltf(0, {}))
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            log.warning("%s: the glTF file cannot take the new map (%s: %s); the GLB is built from the mesh",
                        name, type(exc).__name__, exc)
    return glb_bytes(mesh, texture_png, name)


def _plain_material(name: str) -> Material:
    """The material of a mesh that had none: matte (metallic 0, roughness 1), both sides, the texture alone."""
    return Material(name=name, metallic_factor=0.0, roughness_factor=ROUGHNESS, double_sided=True)


def glb_bytes(mesh: Mesh, texture_png: bytes, name: str) -> bytes:
    """A binary glTF 2.0 file: one node, one mesh with POSITION, NORMAL, TEXCOORD_0 (and TEXCOORD_1
    when the mesh keeps a second UV set), the PNG
    embedded as the base-colour texture of the mesh's own glTF material (``Mesh.material``, with
    its other maps, their transforms and its extensions), or of a matte material (metallic 0,
    roughness 1) when it has none.

    Positions are in the user's frame (as float32, as glTF stores them). Normals are the file's own
    (made unit length, as glTF requires), or the mesh's smooth vertex normals when it had none.
    """
    corners, triangles = gltf_vertices(mesh)
    positions = mesh.positions[corners[:, 0]].astype(np.float32)
    if mesh.normals is not None:
        normals = mesh.normals[corners[:, 2]]
        normals = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-30)
    else:
        normals = mesh.vertex_normals[corners[:, 0]]
    normals[np.linalg.norm(normals, axis=1) < 0.5] = (0.0, 1.0, 0.0)  # zero normals, and degenerate faces'
    attributes = {"POSITION": positions, "NORMAL": normals.astype(np.float32)}
    for attribute, (uvs, column) in {"TEXCOORD_0": (mesh.uvs, 1), "TEXCOORD_1": (mesh.uvs2, -1)}.items():
        if uvs is not None:  # glTF's v runs down; flipped before rounding, so a glTF file's UVs come back exactly
            attributes[attribute] = (uvs[corners[:, column]] * (1.0, -1.0) + (0.0, 1.0)).astype(np.float32)
    index_type, index_dtype = (5123, np.uint16) if len(corners) < 65535 else (5125, np.uint32)
    material = mesh.material or _plain_material(name)
    # one image per distinct map (occlusion often shares the metallic-roughness one), one texture per
    # distinct (image, sampler): the new base colour map repeats with mipmaps, the others keep the file's sampler
    images, samplers, textures, texture_of = [texture_png], [SAMPLER], [{"sampler": 0, "source": 0}], {}
    for map_name, image in material.maps.items():
        encoded, sampler = png_bytes(image), material.map_samplers.get(map_name, SAMPLER)
        for item, items in ((encoded, images), (sampler, samplers)):
            if item not in items:
                items.append(item)
        texture = {"sampler": samplers.index(sampler), "source": images.index(encoded)}
        if texture not in textures:
            textures.append(texture)
        texture_of[map_name] = textures.index(texture)
    blobs = [(values, 34962) for values in attributes.values()] + [(triangles.astype(index_dtype).reshape(-1), 34963)]
    blobs += [(image, None) for image in images]
    binary = bytearray()
    views = []
    for blob, target in blobs:
        raw = blob.tobytes() if isinstance(blob, np.ndarray) else blob
        view = {"buffer": 0, "byteOffset": len(binary), "byteLength": len(raw)}
        if target is not None:
            view["target"] = target
        views.append(view)
        binary += raw + b"\0" * (-len(raw) % 4)
    accessors = [{"bufferView": view, "componentType": FLOAT, "count": len(corners), "type": f"VEC{values.shape[1]}"}
                 for view, values in enumerate(attributes.values())]
    accessors[0] |= {"min": positions.min(axis=0).tolist(), "max": positions.max(axis=0).tolist()}
    accessors.append({"bufferView": len(attributes), "componentType": index_type, "count": triangles.size,
                      "type": "SCALAR"})
    gltf = {
        "asset": {"version": "2.0", "generator": "texgen"},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0, "name": name}],
        "meshes": [{"name": name, "primitives": [{
            "attributes": {attribute: index for index, attribute in enumerate(attributes)},
            "indices": len(attributes), "material": 0, "mode": 4}]}],
        "materials": [material.gltf(0, texture_of)],
        "textures": textures, "samplers": samplers,
        "images": [{"bufferView": len(attributes) + 1 + index, "mimeType": "image/png"}
                   for index in range(len(images))],
        "accessors": accessors, "bufferViews": views, "buffers": [{"byteLength": len(binary)}],
    }
    if material.extensions_used:
        gltf["extensionsUsed"] = material.extensions_used
    if material.required_extensions:
        gltf["extensionsRequired"] = list(material.required_extensions)
    return pack_glb(gltf, bytes(binary))


# ---------------------------------------------------------------------- preview pictures


def _rgb8(image: np.ndarray, what: str) -> np.ndarray:
    """(H, W, 3) uint8 from grey, RGB or RGBA, uint8 or float in [0, 1]."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise TexgenError(f"{what} must be an (H, W), (H, W, 3) or (H, W, 4) image, got shape {image.shape}")
    if image.dtype != np.uint8:
        image = np.clip(np.round(np.nan_to_num(image.astype(np.float32)) * np.float32(255)), 0, 255).astype(np.uint8)
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def view_picture(image: torch.Tensor) -> np.ndarray:
    """(H, W, 3) uint8 of a view's (C, H, W) or (H, W) float tensor in [0, 1] (C = 1 or 3), for a contact sheet."""
    import torch

    image = image if image.ndim == 3 else image[None]
    return image.expand(3, -1, -1).clamp(0, 1).mul_(255).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def contact_sheet(tiles: list[tuple[str, np.ndarray]], columns: int, tile_size: int | None = None) -> np.ndarray:
    """Lay out labelled pictures in a grid on a dark background.

    tiles : (label, image) pairs; images are (H, W), (H, W, 1|3|4), uint8 or float in [0, 1]
    columns : tiles per row
    tile_size : side of every tile's square cell; default: the largest tile side. Each picture
        is scaled to fit its cell, keeping its aspect ratio (averaging pixels when it shrinks).
    returns : (H, W, 3) uint8
    """
    import cv2
    from PIL import Image, ImageDraw, ImageFont

    if not tiles:
        raise ValueError("contact_sheet needs at least one tile")
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")
    images = [_rgb8(image, f"tile {label!r}") for label, image in tiles]
    cell = tile_size or max(max(image.shape[:2]) for image in images)
    font = ImageFont.load_default()
    label_height = font.getbbox("Hg")[3] + 6
    gap = 4
    rows = math.ceil(len(tiles) / columns)
    columns = min(columns, len(tiles))
    width, height = columns * (cell + gap) + gap, rows * (cell + label_height + gap) + gap
    sheet = Image.new("RGB", (width, height), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for index, ((label, _), image) in enumerate(zip(tiles, images)):
        x = gap + (index % columns) * (cell + gap)
        y = gap + (index // columns) * (cell + label_height + gap)
        scale = cell / max(image.shape[:2])
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        picture = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA)
        sheet.paste(Image.fromarray(picture), (x + (cell - size[0]) // 2, y + label_height + (cell - size[1]) // 2))
        text = label
        while text and draw.textlength(text, font=font) > cell:
            text = text[:-1]
        draw.text((x + 2, y + 2), text, fill=(230, 230, 230), font=font)
    return np.asarray(sheet)


def texture_renders(mesh: Mesh, texture: np.ndarray, size: int = 256,
                    views: int = 4) -> list[tuple[str, np.ndarray]]:
    """Render the textured mesh unlit from ``views`` orbit cameras (elevation 20 degrees, evenly
    spread azimuths starting front-right), over a grey background.

    The renderer draws one sample per pixel, so each picture is drawn at twice the size and
    shrunk (smooth outlines for people to look at).

    texture : (N, M, 3) uint8 or float in [0, 1] for ``mesh``'s UVs
    returns : (label, (size, size, 3) uint8) per view, the label naming the camera's azimuth
    """
    import cv2

    from .camera import orbit_camera
    from .render import Renderer, texture_bytes

    cameras = [orbit_camera(30.0 + 360.0 * index / views, 20.0, 2 * size) for index in range(views)]
    with Renderer(mesh) as renderer:
        colors = renderer.render_texture(cameras, _rgb8(texture, "texture")).numpy()
        mask = renderer.render(cameras).mask.numpy()[:, None]
    composite = np.where(mask, colors, 0.5).transpose(0, 2, 3, 1).astype(np.float32)  # (B, 2 size, 2 size, 3)
    pictures = []
    for camera, picture in zip(cameras, composite):
        picture = cv2.resize(picture, (size, size), interpolation=cv2.INTER_AREA)
        pictures.append((f"textured, azimuth {camera.azimuth:.0f}\N{DEGREE SIGN}", texture_bytes(picture)))
    return pictures


__all__ = ["atomic_write", "write_files", "write_outputs", "output_paths", "safe_name", "png_bytes",
           "report_bytes", "obj_bytes", "mtl_bytes", "corner_indices", "gltf_vertices", "glb_bytes", "contact_sheet",
           "view_picture", "texture_renders", "OUTPUT_KINDS"]
