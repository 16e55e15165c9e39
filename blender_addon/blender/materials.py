"""Arrays -> scene: images, and materials whose Principled BSDF base colour reads an image through
a UV Map node naming the object's UV map.

Every change goes through a :class:`Transaction`, so a failure half-way undoes what was done and
the scene is left as it was. Pixel writes are recorded by :class:`PixelHistory`, which puts the
right pixels back after Blender's undo and redo (Blender's undo restores an image's properties
but keeps the pixels it has in memory).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import bpy
import numpy as np

from ..core.meshdata import pixels_to_texture, texture_to_pixels

MARK = "texgen"                 # custom property on the materials and images texgen made
REVISION = "texgen_revision"    # custom property on an image: which pixels it should show
TEXTURE_DIR = "textures"


class Transaction:
    """Undo actions collected while applying a result; :meth:`rollback` runs them newest first."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def on_rollback(self, action: Callable[[], None]) -> None:
        self._undo.append(action)

    def rollback(self) -> None:
        while self._undo:
            self._undo.pop()()


class PixelHistory:
    """Pixels texgen wrote, per image name and revision, to restore them after undo or redo.

    Only the newest ``keep`` revisions of each image are held (a 2048² texture is 12 MiB).
    """

    def __init__(self, keep: int = 4) -> None:
        self.keep = keep
        self._revisions: dict[str, dict[int, np.ndarray]] = {}
        self._shown: dict[str, int] = {}
        self._counter = 0

    def write(self, image: bpy.types.Image, texture: np.ndarray, transaction: Optional[Transaction] = None) -> None:
        """Set ``image``'s pixels to ``texture`` (H, W, 3) uint8, remembering the pixels it had;
        ``transaction``'s rollback puts them back."""
        name = image.name
        revisions = self._revisions.setdefault(name, {})
        old = int(image.get(REVISION, 0))
        if image.has_data and old not in revisions:
            revisions[old] = read_texture(image)
        if transaction is not None and old in revisions:
            previous = revisions[old]
            transaction.on_rollback(lambda: self._show(bpy.data.images[name], old, previous))
        self._counter = max(self._counter, old, *revisions) + 1
        revisions[self._counter] = np.array(texture, dtype=np.uint8, copy=True)
        self._show(image, self._counter, texture)
        for stale in sorted(revisions)[:-self.keep]:
            del revisions[stale]

    def _show(self, image: bpy.types.Image, revision: int, texture: np.ndarray) -> None:
        set_pixels(image, texture)
        image[REVISION] = revision
        self._shown[image.name] = revision

    def restore(self) -> list[str]:
        """After undo/redo: give each tracked image the pixels of the revision it now names."""
        restored = []
        for name, revisions in self._revisions.items():
            image = bpy.data.images.get(name)
            if image is None:
                continue
            revision = int(image.get(REVISION, 0))
            if revision != self._shown.get(name) and revision in revisions:
                self._show(image, revision, revisions[revision])
                restored.append(name)
        return restored

    def forget(self, name: str) -> None:
        self._revisions.pop(name, None)
        self._shown.pop(name, None)


HISTORY = PixelHistory()


@bpy.app.handlers.persistent
def _after_undo(*_args: object) -> None:
    HISTORY.restore()


def register() -> None:
    for handlers in (bpy.app.handlers.undo_post, bpy.app.handlers.redo_post):
        handlers.append(_after_undo)


def unregister() -> None:
    for handlers in (bpy.app.handlers.undo_post, bpy.app.handlers.redo_post):
        while _after_undo in handlers:
            handlers.remove(_after_undo)


def set_pixels(image: bpy.types.Image, texture: np.ndarray) -> None:
    """Write (H, W, 3|4) uint8 (top row first) into ``image``, resizing it when needed."""
    height, width = texture.shape[:2]
    if tuple(image.size) != (width, height):
        image.scale(width, height)
    image.pixels.foreach_set(texture_to_pixels(texture))
    image.update()


def read_texture(image: bpy.types.Image) -> np.ndarray:
    """``image``'s pixels as (H, W, 3) uint8, top row first."""
    width, height = image.size
    pixels = np.empty(width * height * image.channels, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    return pixels_to_texture(pixels, width, height, image.channels)


def image_path(name: str) -> str:
    """Blender-relative path of an image saved next to the .blend file."""
    return f"//{TEXTURE_DIR}/{bpy.path.clean_name(name)}.png"


def store_image(image: bpy.types.Image, storage: str, transaction: Transaction) -> None:
    """Pack ``image`` into the .blend ("PACK") or save it as PNG next to it ("SAVE")."""
    if storage == "PACK":
        image.pack()
        return
    path = Path(bpy.path.abspath(image_path(image.name)))
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        transaction.on_rollback(lambda: path.unlink(missing_ok=True))
    else:
        previous = path.read_bytes()
        transaction.on_rollback(lambda: path.write_bytes(previous))
    image.filepath_raw = image_path(image.name)
    image.file_format = "PNG"
    image.save()


def texgen_material(obj: bpy.types.Object) -> Optional[bpy.types.Material]:
    """The texgen material in ``obj``'s slots, if it has one."""
    for slot in obj.material_slots:
        if slot.material is not None and slot.material.get(MARK):
            return slot.material
    return None


def material_image(material: Optional[bpy.types.Material]) -> Optional[bpy.types.Image]:
    """The image a material's Principled BSDF base colour reads, if it reads one directly."""
    if material is None or material.node_tree is None:
        return None
    for node in material.node_tree.nodes:
        if node.type == "BSDF_PRINCIPLED":
            links = node.inputs["Base Color"].links
            if links and links[0].from_node.type == "TEX_IMAGE":
                return links[0].from_node.image
    return None


def apply_texture(obj: bpy.types.Object, texture: np.ndarray, uv_name: str, *, storage: str,
                  keep_old_materials: bool, transaction: Transaction) -> bpy.types.Image:
    """Show ``texture`` on ``obj`` through ``uv_name``: update its texgen image, or create image and
    material and give the material every slot (creating one when there is none)."""
    material = texgen_material(obj)
    image = material_image(material)
    if image is None:
        material = None  # no texgen material, or its image was deleted: make both anew
        image = bpy.data.images.new(f"{obj.name}_texgen", texture.shape[1], texture.shape[0], alpha=False)
        image[MARK] = True
        transaction.on_rollback(lambda name=image.name: _remove_image(name))
    HISTORY.write(image, texture, transaction)
    store_image(image, "PACK" if image.packed_file is not None else storage, transaction)
    if material is None:
        material = _new_material(obj.name, image, uv_name, transaction)
        _assign(obj, material, keep_old_materials, transaction)
    else:
        _set_uv_map(material, uv_name)
    return image


def _new_material(name: str, image: bpy.types.Image, uv_name: str, transaction: Transaction) -> bpy.types.Material:
    material = bpy.data.materials.new(f"{name}_texgen")
    transaction.on_rollback(lambda name=material.name: bpy.data.materials.remove(bpy.data.materials[name]))
    material[MARK] = True
    if bpy.app.version < (5, 0, 0):  # from 5.0 every material has its node tree
        material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    texture_node = nodes.new("ShaderNodeTexImage")
    texture_node.image = image
    texture_node.location = (bsdf.location.x - 320, bsdf.location.y)
    uv_node = nodes.new("ShaderNodeUVMap")
    uv_node.uv_map = uv_name
    uv_node.location = (texture_node.location.x - 220, texture_node.location.y - 60)
    links.new(uv_node.outputs["UV"], texture_node.inputs["Vector"])
    links.new(texture_node.outputs["Color"], bsdf.inputs["Base Color"])
    return material


def _set_uv_map(material: bpy.types.Material, uv_name: str) -> None:
    for node in material.node_tree.nodes:
        if node.type == "UVMAP":
            node.uv_map = uv_name


def _assign(obj: bpy.types.Object, material: bpy.types.Material, keep_old: bool, transaction: Transaction) -> None:
    if not obj.material_slots:
        obj.data.materials.append(material)
        transaction.on_rollback(lambda: obj.data.materials.pop(index=len(obj.data.materials) - 1))
        return
    for slot in obj.material_slots:
        old = slot.material
        if old is not None and keep_old and not old.use_fake_user:
            old.use_fake_user = True
            transaction.on_rollback(lambda old=old: setattr(old, "use_fake_user", False))
        slot.material = material
        transaction.on_rollback(lambda slot=slot, old=old: setattr(slot, "material", old))


def _remove_image(name: str) -> None:
    image = bpy.data.images.get(name)
    if image is not None:
        HISTORY.forget(name)
        bpy.data.images.remove(image)
