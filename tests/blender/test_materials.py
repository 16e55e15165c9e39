"""Arrays -> scene: image, material and UV map node; updates, old materials, rollback, pixel undo."""

from __future__ import annotations

import importlib
from pathlib import Path

import bpy
import numpy as np
import pytest

from conftest import ADDON_MODULE


@pytest.fixture
def materials(addon):
    return importlib.import_module(f"{ADDON_MODULE}.blender.materials")


def _texture(value: int, size: int = 16) -> np.ndarray:
    texture = np.full((size, size, 3), value, np.uint8)
    texture[0, 0] = (255, 0, 0)  # top-left texel, to check orientation
    return texture


def _cube(uv_name: str = "UVMap"):
    bpy.ops.mesh.primitive_cube_add()
    obj = bpy.context.active_object
    obj.data.uv_layers.active.name = uv_name
    return obj


def check_textured(obj, uv_name: str, texture: np.ndarray, materials):
    """The object shows ``texture`` through a texgen material that reads it via ``uv_name``."""
    material = materials.texgen_material(obj)
    assert material is not None and all(slot.material == material for slot in obj.material_slots)
    nodes = material.node_tree.nodes
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    image_node = bsdf.inputs["Base Color"].links[0].from_node
    assert image_node.type == "TEX_IMAGE"
    uv_node = image_node.inputs["Vector"].links[0].from_node
    assert uv_node.type == "UVMAP" and uv_node.uv_map == uv_name and uv_name in obj.data.uv_layers
    image = image_node.image
    assert np.array_equal(materials.read_texture(image), texture)
    pixels = np.empty(len(image.pixels), np.float32)
    image.pixels.foreach_get(pixels)
    top_left = pixels.reshape(image.size[1], image.size[0], 4)[-1, 0]  # Blender stores the bottom row first
    assert np.allclose(top_left, [1, 0, 0, 1])
    return image, material


def test_new_material_reads_image_through_the_objects_uv_map(scene, materials):
    obj = _cube("Atlas")
    transaction = materials.Transaction()
    image = materials.apply_texture(obj, _texture(90), "Atlas", storage="PACK", keep_old_materials=True,
                                    transaction=transaction)
    assert image.packed_file is not None and tuple(image.size) == (16, 16)
    check_textured(obj, "Atlas", _texture(90), materials)
    assert len(obj.material_slots) == 1


def test_second_result_updates_the_same_image_and_material(scene, materials):
    obj = _cube()
    first = materials.apply_texture(obj, _texture(10), "UVMap", storage="PACK", keep_old_materials=True,
                                    transaction=materials.Transaction())
    counts = len(bpy.data.images), len(bpy.data.materials)
    second = materials.apply_texture(obj, _texture(200, 32), "UVMap", storage="PACK", keep_old_materials=True,
                                     transaction=materials.Transaction())
    assert second == first and (len(bpy.data.images), len(bpy.data.materials)) == counts
    check_textured(obj, "UVMap", _texture(200, 32), materials)
    # the packed copy holds the new pixels too: reloading from it gives them back
    second.reload()
    assert np.array_equal(materials.read_texture(second), _texture(200, 32))


@pytest.mark.parametrize("keep", [True, False])
def test_existing_materials_are_kept_unless_allowed_otherwise(scene, materials, keep):
    obj = _cube()
    old = bpy.data.materials.new("Painted by hand")
    obj.data.materials.append(old)
    materials.apply_texture(obj, _texture(5), "UVMap", storage="PACK", keep_old_materials=keep,
                            transaction=materials.Transaction())
    check_textured(obj, "UVMap", _texture(5), materials)
    assert old.use_fake_user is keep and old.name in bpy.data.materials


def test_rollback_leaves_the_scene_as_it_was(scene, materials):
    obj = _cube()
    old = bpy.data.materials.new("Original")
    obj.data.materials.append(old)
    before = (set(bpy.data.images.keys()), set(bpy.data.materials.keys()), [s.material for s in obj.material_slots])
    transaction = materials.Transaction()
    materials.apply_texture(obj, _texture(5), "UVMap", storage="PACK", keep_old_materials=True,
                            transaction=transaction)
    transaction.rollback()
    after = (set(bpy.data.images.keys()), set(bpy.data.materials.keys()), [s.material for s in obj.material_slots])
    assert after == before and not old.use_fake_user

    image = materials.apply_texture(obj, _texture(5), "UVMap", storage="PACK", keep_old_materials=True,
                                    transaction=materials.Transaction())
    transaction = materials.Transaction()
    materials.apply_texture(obj, _texture(77), "UVMap", storage="PACK", keep_old_materials=True,
                            transaction=transaction)
    transaction.rollback()
    assert np.array_equal(materials.read_texture(image), _texture(5))


def test_save_next_to_the_blend_file(scene, materials, tmp_path):
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scene.blend"))
    obj = _cube()
    image = materials.apply_texture(obj, _texture(33), "UVMap", storage="SAVE", keep_old_materials=True,
                                    transaction=materials.Transaction())
    path = Path(bpy.path.abspath(image.filepath))
    assert image.packed_file is None and image.filepath.startswith("//textures/")
    assert path.parent == tmp_path / "textures" and path.is_file()
    image.reload()
    assert np.array_equal(materials.read_texture(image), _texture(33))


def test_undo_and_redo_restore_pixels(scene, materials):
    obj = _cube()
    image = materials.apply_texture(obj, _texture(40), "UVMap", storage="PACK", keep_old_materials=True,
                                    transaction=materials.Transaction())
    name = image.name
    bpy.ops.ed.undo_push(message="textured")
    materials.HISTORY.write(image, _texture(160))
    image.pack()
    bpy.ops.ed.undo_push(message="seams inpainted")
    assert np.array_equal(materials.read_texture(bpy.data.images[name]), _texture(160))
    bpy.ops.ed.undo()
    assert np.array_equal(materials.read_texture(bpy.data.images[name]), _texture(40))
    bpy.ops.ed.redo()
    assert np.array_equal(materials.read_texture(bpy.data.images[name]), _texture(160))
