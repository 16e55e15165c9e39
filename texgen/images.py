"""Texture images coming in: image files, arrays and a mesh's own base-colour map.

Torch-free, so that a client reads a texture exactly as the job it sends it to would.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .errors import ImageError
from .mesh import Mesh


def read_texture(texture: np.ndarray | str | Path | None, mesh: Mesh) -> np.ndarray:
    """The texture as an (H, W, 4) uint8 RGBA array (alpha 255 where the source has none).

    texture : an image array (H, W), (H, W, 3) or (H, W, 4), uint8 or float in [0, 1]; an image
        file; or None for the mesh's own base-colour map
    """
    if texture is None:
        if mesh.texture is None:
            raise ImageError(f"{mesh.name}: the mesh has no base-colour texture; give one (--texture PNG)")
        texture = mesh.texture
    elif not isinstance(texture, np.ndarray):
        texture = _read_image_file(Path(texture))
    image = np.asarray(texture)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or min(image.shape[:2]) < 1:
        raise ImageError(f"texture must be an (H, W), (H, W, 3) or (H, W, 4) image, got shape {image.shape}")
    if image.dtype != np.uint8:
        if not np.issubdtype(image.dtype, np.number):
            raise ImageError(f"texture must hold numbers, got {image.dtype}")
        if np.issubdtype(image.dtype, np.floating):
            image = np.round(np.nan_to_num(image.astype(np.float64)) * 255.0)
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    if image.shape[2] == 3:
        image = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return np.ascontiguousarray(image)


def _read_image_file(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise ImageError(f"texture file not found: {path}")
    try:
        with Image.open(path) as opened:
            return np.asarray(opened.convert("RGBA" if "A" in opened.getbands() else "RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageError(f"{path.name}: not an image texgen can read ({type(exc).__name__}: {exc}); "
                         "use a PNG, JPEG, TGA, BMP or TIFF file") from None


def resample_square(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` (H, W, C) resampled to (size, size, C): area-averaged down, bilinear up."""
    if image.shape[:2] == (size, size):
        return image
    shrink = size < max(image.shape[:2])
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def starting_image(mesh: Mesh, init_texture: str) -> np.ndarray:
    """The (H, W, 3) uint8 image ``init_texture`` names: "mesh" for the mesh's own base-colour map,
    else an image file. Raises ImageError for a mesh without one, or a missing or unreadable file,
    and for a mesh whose UVs texgen made (no image lies on them)."""
    if mesh.unwrapped:
        raise ImageError(f"{mesh.name}: a texture to start from lies on the mesh's own UVs, and these were made "
                         "by texgen (the mesh had none, or --unwrap always); give the mesh its UVs, or leave out "
                         "--init-texture")
    if init_texture == "mesh" and mesh.texture is None:
        raise ImageError(f"{mesh.name}: the mesh has no base-colour texture to start from; give an image "
                         "(--init-texture PNG)")
    return read_texture(None if init_texture == "mesh" else init_texture, mesh)[:, :, :3]
