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


MATERIAL_MODES = ("EXISTING", "NEW")  # see apply_texture
IMAGE_NODE = "texgen image"  # the name of the Image Texture node texgen adds to a material


def texgen_materials(obj: bpy.types.Object) -> list[bpy.types.Material]:
    """The texgen materials in ``obj``'s slots (each slot's own copy, or one new material), in slot order."""
    found: list[bpy.types.Material] = []
    for slot in obj.material_slots:
        if slot.material is not None and slot.material.get(MARK) and slot.material not in found:
            found.append(slot.material)
    return found


def texgen_material(obj: bpy.types.Object) -> Optional[bpy.types.Material]:
    """The first texgen material in ``obj``'s slots, if it has one."""
    return next(iter(texgen_materials(obj)), None)


def material_image(material: Optional[bpy.types.Material]) -> Optional[bpy.types.Image]:
    """The image a material's base colour reads: texgen's image node's, or the image a Principled
    BSDF's base colour reads directly."""
    if material is None or material.node_tree is None:
        return None
    nodes = material.node_tree.nodes
    if (node := nodes.get(IMAGE_NODE)) is not None and node.type == "TEX_IMAGE" and node.outputs["Color"].links:
        return node.image
    for node in nodes:
        if node.type == "BSDF_PRINCIPLED":
            links = node.inputs["Base Color"].links
            if links and links[0].from_node.type == "TEX_IMAGE":
                return links[0].from_node.image
    return None


def apply_texture(obj: bpy.types.Object, texture: np.ndarray, uv_name: str, *, storage: str,
                  keep_old_materials: bool, transaction: Transaction,
                  material_mode: str = "EXISTING") -> bpy.types.Image:
    """Show ``texture`` on ``obj`` through ``uv_name``: update its texgen image, or create the image and
    put it in the object's slots.

    material_mode : "EXISTING" gives each slot a copy of its material whose Principled BSDF base colour
        reads the image, its other inputs (roughness, normal map, alpha) as they were; a slot without
        a material or without one Principled BSDF to paint gets a new material. "NEW": one new
        material, the image as its base colour, takes every slot. An object without slots gets one.
    """
    if material_mode not in MATERIAL_MODES:
        raise ValueError(f"material_mode must be one of {', '.join(MATERIAL_MODES)}, got {material_mode!r}")
    painted = texgen_materials(obj)
    image = material_image(painted[0]) if painted else None
    if image is None:
        painted = []  # no texgen material, or its image was deleted: make both anew
        image = bpy.data.images.new(f"{obj.name}_texgen", texture.shape[1], texture.shape[0], alpha=False)
        image[MARK] = True
        transaction.on_rollback(lambda name=image.name: _remove_image(name))
    HISTORY.write(image, texture, transaction)
    store_image(image, "PACK" if image.packed_file is not None else storage, transaction)
    if not painted:
        _assign(obj, image, uv_name, material_mode, keep_old_materials, transaction)
    for material in painted:
        _set_uv_map(material, uv_name)
    return image


def _new_material(name: str, transaction: Transaction) -> bpy.types.Material:
    """A new node material marked as texgen's, named ``name``."""
    material = bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0):  # from 5.0 every material has its node tree
        material.use_nodes = True
    return _marked(material, transaction)


def _textured_copy(material: bpy.types.Material, transaction: Transaction) -> bpy.types.Material:
    """A copy of ``material`` marked as texgen's (the original stays as it is, for other objects that use it)."""
    copy = material.copy()
    copy.name = f"{material.name}_texgen"
    copy.use_fake_user = False
    if bpy.app.version < (5, 0, 0):  # before 5.0 a material may keep a node tree it does not render with
        copy.use_nodes = True
    return _marked(copy, transaction)


def _marked(material: bpy.types.Material, transaction: Transaction) -> bpy.types.Material:
    transaction.on_rollback(lambda name=material.name: bpy.data.materials.remove(bpy.data.materials[name]))
    material[MARK] = True
    return material


def _painted_bsdf(material: Optional[bpy.types.Material]) -> Optional[bpy.types.Node]:
    """The Principled BSDF whose base colour texgen paints: the one the active material output's
    surface reads directly, else the material's only one; None when there is no such node."""
    if material is None or material.node_tree is None:
        return None
    nodes = material.node_tree.nodes
    for node in nodes:
        if node.type == "OUTPUT_MATERIAL" and node.is_active_output and node.inputs["Surface"].links:
            source = node.inputs["Surface"].links[0].from_node
            if source.type == "BSDF_PRINCIPLED":
                return source
    principled = [node for node in nodes if node.type == "BSDF_PRINCIPLED"]
    return principled[0] if len(principled) == 1 else None


def _read_image(material: bpy.types.Material, bsdf: bpy.types.Node, image: bpy.types.Image, uv_name: str) -> None:
    """Make ``bsdf``'s base colour read ``image`` through a UV Map node naming ``uv_name``. What the base
    colour read before stays in the material, unlinked from it (other links, such as alpha, stay)."""
    nodes, links = material.node_tree.nodes, material.node_tree.links
    texture_node = nodes.new("ShaderNodeTexImage")
    texture_node.name = texture_node.label = IMAGE_NODE
    texture_node.image = image
    texture_node.location = (bsdf.location.x - 320, bsdf.location.y)
    uv_node = nodes.new("ShaderNodeUVMap")
    uv_node.uv_map = uv_name
    uv_node.location = (texture_node.location.x - 220, texture_node.location.y - 60)
    links.new(uv_node.outputs["UV"], texture_node.inputs["Vector"])
    links.new(texture_node.outputs["Color"], bsdf.inputs["Base Color"])


def _set_uv_map(material: bpy.types.Material, uv_name: str) -> None:
    """Point the UV Map node that feeds texgen's image node at ``uv_name``."""
    nodes = material.node_tree.nodes
    image_node = nodes.get(IMAGE_NODE)
    if image_node is not None and image_node.inputs["Vector"].links:
        uv_nodes = [image_node.inputs["Vector"].links[0].from_node]
    else:  # a material of an add-on version that did not name its nodes: its only UV Map node
        uv_nodes = [node for node in nodes if node.type == "UVMAP"]
    for node in uv_nodes:
        if node.type == "UVMAP":
            node.uv_map = uv_name


def _assign(obj: bpy.types.Object, image: bpy.types.Image, uv_name: str, material_mode: str, keep_old: bool,
            transaction: Transaction) -> None:
    """Give each of ``obj``'s slots a material that reads ``image`` (see :func:`apply_texture`)."""
    new: list[bpy.types.Material] = []  # the new material, made once, for the slots that need it

    def new_material() -> bpy.types.Material:
        if not new:
            material = _new_material(f"{obj.name}_texgen", transaction)
            _read_image(material, _painted_bsdf(material), image, uv_name)
            new.append(material)
        return new[0]

    if not obj.material_slots:
        obj.data.materials.append(new_material())
        transaction.on_rollback(lambda: obj.data.materials.pop(index=len(obj.data.materials) - 1))
        return
    copies: dict[str, bpy.types.Material] = {}  # one copy per material, however many slots hold it
    for slot in obj.material_slots:
        old = slot.material
        # a texgen material whose image was deleted is not copied again: the slot gets a new one
        if material_mode == "EXISTING" and not (old is not None and old.get(MARK)) and _painted_bsdf(old) is not None:
            if old.name not in copies:
                copies[old.name] = _textured_copy(old, transaction)
                _read_image(copies[old.name], _painted_bsdf(copies[old.name]), image, uv_name)
            material = copies[old.name]
        else:
            material = new_material()
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
