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
    """The object shows ``texture`` through one texgen material in every slot that reads it via ``uv_name``."""
    material = materials.texgen_material(obj)
    assert material is not None and all(slot.material == material for slot in obj.material_slots)
    assert uv_name in obj.data.uv_layers
    return check_reads(material, uv_name, texture, materials), material


def check_reads(material, uv_name: str, texture: np.ndarray, materials):
    """``material``'s Principled BSDF base colour reads ``texture`` through ``uv_name``; returns the image."""
    nodes = material.node_tree.nodes
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    image_node = bsdf.inputs["Base Color"].links[0].from_node
    assert image_node.type == "TEX_IMAGE"
    uv_node = image_node.inputs["Vector"].links[0].from_node
    assert uv_node.type == "UVMAP" and uv_node.uv_map == uv_name
    image = image_node.image
    assert np.array_equal(materials.read_texture(image), texture)
    pixels = np.empty(len(image.pixels), np.float32)
    image.pixels.foreach_get(pixels)
    top_left = pixels.reshape(image.size[1], image.size[0], 4)[-1, 0]  # Blender stores the bottom row first
    assert np.allclose(top_left, [1, 0, 0, 1])
    return image


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
                            transaction=materials.Transaction(), material_mode="NEW")
    check_textured(obj, "UVMap", _texture(5), materials)
    assert old.use_fake_user is keep and old.name in bpy.data.materials


def _shaded(name: str):
    """A material whose Principled BSDF has its own base colour map, roughness, and alpha from that map."""
    material = bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    bsdf.inputs["Roughness"].default_value = 0.25
    old_map = nodes.new("ShaderNodeTexImage")
    old_map.image = bpy.data.images.new(f"{name} map", 4, 4, alpha=True)
    links.new(old_map.outputs["Color"], bsdf.inputs["Base Color"])
    links.new(old_map.outputs["Alpha"], bsdf.inputs["Alpha"])
    return material


def test_each_slots_material_is_painted_keeping_its_other_inputs(scene, materials):
    obj = _cube()
    wood, metal = _shaded("Wood"), _shaded("Metal")
    emission = bpy.data.materials.new("Glow")  # a surface texgen does not paint: no Principled BSDF
    if bpy.app.version < (5, 0, 0):
        emission.use_nodes = True
    nodes = emission.node_tree.nodes
    nodes.remove(next(n for n in nodes if n.type == "BSDF_PRINCIPLED"))
    glow = nodes.new("ShaderNodeEmission")
    emission.node_tree.links.new(glow.outputs["Emission"], nodes["Material Output"].inputs["Surface"])
    for material in (wood, metal, wood, emission, None):
        obj.data.materials.append(material)
    before = (set(bpy.data.materials.keys()), [slot.material for slot in obj.material_slots])
    transaction = materials.Transaction()
    image = materials.apply_texture(obj, _texture(60), "UVMap", storage="PACK", keep_old_materials=True,
                                    transaction=transaction)
    slots = [slot.material for slot in obj.material_slots]
    # one copy per material, however many slots hold it; the originals are untouched for other objects
    assert slots[0] == slots[2] and slots[0].name == "Wood_texgen" and slots[1].name == "Metal_texgen"
    assert slots[3] == slots[4] == bpy.data.materials["Cube_texgen"]  # the new material where none could be painted
    assert materials.texgen_materials(obj) == [slots[0], slots[1], slots[3]]
    for material in set(slots):
        assert check_reads(material, "UVMap", _texture(60), materials) == image
    for copy, original in ((slots[0], wood), (slots[1], metal)):
        bsdf = next(n for n in copy.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
        assert bsdf.inputs["Roughness"].default_value == pytest.approx(0.25)
        assert bsdf.inputs["Alpha"].links[0].from_node.image == bpy.data.images[f"{original.name} map"]
        original_bsdf = next(n for n in original.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
        assert original_bsdf.inputs["Base Color"].links[0].from_node.image.name == f"{original.name} map"
        assert original.use_fake_user
    # a second result updates the image and the UV map of every copy, and makes no new material
    count = len(bpy.data.materials)
    obj.data.uv_layers.new(name="Second")
    again = materials.apply_texture(obj, _texture(90), "Second", storage="PACK", keep_old_materials=True,
                                    transaction=materials.Transaction())
    assert again == image and len(bpy.data.materials) == count
    for material in set(slots):
        check_reads(material, "Second", _texture(90), materials)
    transaction.rollback()  # the first application, undone: the scene as it was
    assert (set(bpy.data.materials.keys()), [slot.material for slot in obj.material_slots]) == before
    assert not wood.use_fake_user and not metal.use_fake_user


def test_a_bad_placement_is_refused_before_any_job(scene, addon):
    runner = importlib.import_module(f"{ADDON_MODULE}.blender.runner")
    with pytest.raises(runner.TexgenAddonError, match="material mode.*'COPY'"):
        runner.Placement("PACK", True, "COPY")


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
