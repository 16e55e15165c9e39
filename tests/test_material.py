"""What a glTF file gives beyond geometry: its material, kept through loading and written back by
the GLB export around the new base colour map (its tint dropped for generated maps, its maps
dropped with the old UVs, its details read from the file's JSON), its second UV set, and UVs
stored as quantized integers, named instead of misread."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import pytest
import trimesh
from PIL import Image

from texgen.eval import OracleGenerator
from texgen.errors import MeshError
from texgen.export import write_outputs
from texgen.gltf_json import glb_binary, pack_glb, read_json
from texgen.inspection import inspect_mesh
from texgen.material import (CLAMP_TO_EDGE, MIRRORED_REPEAT, REPEAT, ColourMapping, base_colour_mapping,
                             on_plain_uvs)
from texgen.mesh import load_mesh
from texgen.pipeline import texture_mesh
from texgen.result import TextureResult


def plane(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (8, 8, 3), np.uint8)


def pbr_box(path: Path, **extra) -> dict[str, np.ndarray]:
    """A GLB box whose material has every map (occlusion sharing the metallic-roughness image), a tint,
    emission, alpha masking and two sides. Returns the maps it wrote."""
    maps = {"base": plane(1), "orm": plane(2), "normal": plane(3), "emissive": plane(4)}
    box = trimesh.creation.box()
    uv = np.random.default_rng(0).uniform(0.05, 0.95, (len(box.vertices), 2))
    material = trimesh.visual.material.PBRMaterial(
        name="painted metal", baseColorTexture=Image.fromarray(maps["base"]), baseColorFactor=[0.5, 0.25, 1.0, 0.75],
        metallicRoughnessTexture=Image.fromarray(maps["orm"]), occlusionTexture=Image.fromarray(maps["orm"]),
        normalTexture=Image.fromarray(maps["normal"]), emissiveTexture=Image.fromarray(maps["emissive"]),
        emissiveFactor=[1.0, 0.5, 0.0], metallicFactor=0.25, roughnessFactor=0.75, doubleSided=False,
        alphaMode="MASK", alphaCutoff=0.25, **extra)
    trimesh.Trimesh(box.vertices, box.faces, visual=trimesh.visual.TextureVisuals(uv=uv, material=material),
                    process=False).export(path)
    return maps


def with_plain_object(part: trimesh.Trimesh, name: str, path: Path) -> None:
    """Write a GLB scene of ``part`` (named ``name``) beside an icosahedron named "plain", which has UVs
    and nothing else (no material maps, no second UV set)."""
    plain = trimesh.creation.icosahedron()
    plain.visual = trimesh.visual.TextureVisuals(uv=np.full((len(plain.vertices), 2), 0.5))
    scene = trimesh.Scene()
    scene.add_geometry(part, node_name=name, geom_name=name)
    scene.add_geometry(plain, node_name="plain", geom_name="plain")
    scene.export(path)


def reloaded_material(path: Path):
    (geometry,) = trimesh.load(path, process=False).geometry.values()
    return geometry.visual.material


def test_the_glb_export_gives_the_material_back(tmp_path: Path) -> None:
    maps = pbr_box(tmp_path / "box.glb")
    mesh = load_mesh(tmp_path / "box.glb")
    material = mesh.material
    assert material.name == "painted metal" and sorted(material.maps) == ["emissive", "metallic_roughness", "normal",
                                                                          "occlusion"]
    np.testing.assert_allclose(material.base_color_factor, [0.5, 0.25, 1.0, 0.75], atol=1 / 255)
    new_colour = plane(5)
    paths = write_outputs(TextureResult(mesh, new_colour), tmp_path / "out")
    again = reloaded_material(paths["glb"])
    np.testing.assert_array_equal(np.asarray(again.baseColorTexture.convert("RGB")), new_colour)
    for key, expected in (("metallicRoughnessTexture", "orm"), ("occlusionTexture", "orm"),
                          ("normalTexture", "normal"), ("emissiveTexture", "emissive")):
        np.testing.assert_array_equal(np.asarray(getattr(again, key).convert("RGB")), maps[expected], err_msg=key)
    np.testing.assert_allclose(np.asarray(again.baseColorFactor) / 255, material.base_color_factor, atol=1 / 255)
    assert (again.metallicFactor, again.roughnessFactor, again.alphaMode, again.alphaCutoff, again.doubleSided) == \
        (0.25, 0.75, "MASK", 0.25, False)
    np.testing.assert_allclose(again.emissiveFactor, [1.0, 0.5, 0.0])
    header = glb_json(paths["glb"])
    assert mesh.source_glb is not None  # painted whole: the file itself, its base colour image replaced in place
    assert len(header["images"]) == len(glb_json(tmp_path / "box.glb")["images"])
    # the OBJ's material carries the tint too
    assert "Kd 0.501961 0.25098 1\n" in paths["mtl"].read_text()


def glb_json(path: Path) -> dict:
    data = path.read_bytes()
    return json.loads(data[20:20 + struct.unpack("<I", data[12:16])[0]])


def edit_glb_json(path: Path, edit) -> None:
    """Rewrite a GLB's JSON chunk with ``edit(tree)``, keeping its binary chunk."""
    data = path.read_bytes()
    length = struct.unpack("<I", data[12:16])[0]
    tree = json.loads(data[20:20 + length])
    edit(tree)
    header = json.dumps(tree).encode()
    header += b" " * (-len(header) % 4)
    rest = data[20 + length:]
    path.write_bytes(struct.pack("<4sII", b"glTF", 2, 12 + 8 + len(header) + len(rest))
                     + struct.pack("<I4s", len(header), b"JSON") + header + rest)


def test_glb_details_trimesh_does_not_read_are_kept_or_named(tmp_path: Path) -> None:
    """Normal scale, occlusion strength, texture transforms and the material's own extensions come back;
    a map on a second UV set and an extension holding textures are left out, with a note each."""
    pbr_box(tmp_path / "box.glb")
    transform = {"offset": [0.5, 0.0], "scale": [2.0, 2.0]}

    def edit(tree: dict) -> None:
        (material,) = tree["materials"]
        material["normalTexture"].update(scale=0.5, extensions={"KHR_texture_transform": transform})
        tree["samplers"] = [{"magFilter": 9728, "minFilter": 9728, "wrapS": 33071, "wrapT": 33648}]  # nearest, clamped
        tree["textures"][material["normalTexture"]["index"]]["sampler"] = 0
        material["emissiveTexture"]["texCoord"] = 2
        material["occlusionTexture"]["strength"] = 0.25
        material["extensions"] = {"KHR_materials_emissive_strength": {"emissiveStrength": 4.0},
                                  "KHR_materials_clearcoat": {"clearcoatFactor": 1.0,
                                                              "clearcoatTexture": {"index": 0}}}
        attributes = tree["meshes"][0]["primitives"][0]["attributes"]
        attributes["TEXCOORD_1"] = attributes["TEXCOORD_2"] = attributes["TEXCOORD_0"]
        tree["extensionsUsed"] = ["KHR_texture_transform", "KHR_materials_emissive_strength",
                                  "KHR_materials_clearcoat"]
        tree["extensionsRequired"] = ["KHR_materials_emissive_strength"]

    edit_glb_json(tmp_path / "box.glb", edit)
    # one object named: the GLB output is built from the mesh and its material, the path this test is about
    mesh = load_mesh(tmp_path / "box.glb", object_name=glb_json(tmp_path / "box.glb")["nodes"][0]["name"])
    assert mesh.source_glb is None
    assert sorted(mesh.material.maps) == ["metallic_roughness", "normal", "occlusion"]
    assert mesh.notes[1:] == [
        "the material's emissive map reads TEXCOORD_2, a UV set texgen does not keep; it is left out of the exports",
        "the material's KHR_materials_clearcoat holds textures, which texgen does not carry; it is left out"]
    paths = write_outputs(TextureResult(mesh, plane(5)), tmp_path / "out")
    tree = glb_json(paths["glb"])
    (material,) = tree["materials"]
    assert material["normalTexture"]["scale"] == 0.5
    assert tree["samplers"][tree["textures"][material["normalTexture"]["index"]]["sampler"]] == \
        {"magFilter": 9728, "minFilter": 9728, "wrapS": 33071, "wrapT": 33648}
    assert tree["textures"][material["occlusionTexture"]["index"]]["sampler"] == 0  # the default
    assert material["normalTexture"]["extensions"] == {"KHR_texture_transform": transform}
    assert material["occlusionTexture"]["strength"] == 0.25 and "emissiveTexture" not in material
    assert material["extensions"] == {"KHR_materials_emissive_strength": {"emissiveStrength": 4.0}}
    assert tree["extensionsUsed"] == ["KHR_materials_emissive_strength", "KHR_texture_transform"]
    assert tree["extensionsRequired"] == ["KHR_materials_emissive_strength"]
    assert load_mesh(paths["glb"]).material.same_as(mesh.material)  # and it reads back the same
    assert inspect_mesh(mesh, None)["material"]["gltf_extensions"] == tree["extensionsUsed"]


def read_accessor(path: Path, index: int) -> np.ndarray:
    """One float VEC2/VEC3 or integer SCALAR accessor of a GLB, read without trimesh."""
    data = path.read_bytes()
    length = struct.unpack("<I", data[12:16])[0]
    tree, binary = json.loads(data[20:20 + length]), data[28 + length:]
    spec = tree["accessors"][index]
    view = tree["bufferViews"][spec["bufferView"]]
    dtype = {5123: np.uint16, 5125: np.uint32, 5126: np.float32}[spec["componentType"]]
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3}[spec["type"]]
    start = view.get("byteOffset", 0) + spec.get("byteOffset", 0)
    return np.frombuffer(binary, dtype, spec["count"] * width, start).reshape(spec["count"], width)


def lightmapped_box(path: Path) -> np.ndarray:
    """pbr_box with a second UV set (TEXCOORD_1) that its occlusion map reads; returns those UVs as stored."""
    pbr_box(path)
    (geometry,) = trimesh.load(path, process=False).geometry.values()
    second = np.random.default_rng(9).uniform(0.05, 0.95, (len(geometry.vertices), 2)).astype(np.float32)
    geometry.vertex_attributes["_lightmap"] = second  # trimesh writes custom attributes as they are
    geometry.export(path)

    def edit(tree: dict) -> None:
        attributes = tree["meshes"][0]["primitives"][0]["attributes"]
        attributes["TEXCOORD_1"] = attributes.pop("_lightmap")
        tree["materials"][0]["occlusionTexture"]["texCoord"] = 1

    edit_glb_json(path, edit)
    return second


def test_the_second_uv_set_and_the_maps_on_it_come_back_in_the_glb(tmp_path: Path) -> None:
    """A game asset's lightmap UVs (TEXCOORD_1) and the occlusion map baked on them: texgen paints
    TEXCOORD_0 and gives both back as they were."""
    second = lightmapped_box(tmp_path / "box.glb")
    mesh = load_mesh(tmp_path / "box.glb")
    (geometry,) = trimesh.load(tmp_path / "box.glb", process=False).geometry.values()
    np.testing.assert_allclose(mesh.uvs2[mesh.uv2_faces], np.column_stack([second[:, 0], 1 - second[:, 1]])[
        geometry.faces], atol=1e-7)
    assert mesh.material.map_uv_sets == {"occlusion": 1}
    assert "the second UV set (TEXCOORD_1) is kept as it is in the GLB output" in mesh.notes[0]
    paths = write_outputs(TextureResult(mesh, plane(5)), tmp_path / "out")
    tree = glb_json(paths["glb"])
    (primitive,) = tree["meshes"][0]["primitives"]
    corners = read_accessor(paths["glb"], primitive["indices"]).reshape(-1, 3)
    written = read_accessor(paths["glb"], primitive["attributes"]["TEXCOORD_1"])
    np.testing.assert_array_equal(written[corners], second[geometry.faces])
    assert tree["materials"][0]["occlusionTexture"]["texCoord"] == 1
    assert "texCoord" not in tree["materials"][0]["normalTexture"]
    # a new unwrap replaces TEXCOORD_0 alone: the lightmap and the occlusion map on it stay
    unwrapped = load_mesh(tmp_path / "box.glb", unwrap="always")
    assert unwrapped.uvs2 is not None and sorted(unwrapped.material.maps) == ["occlusion"]
    assert unwrapped.notes[-1].endswith("the material's metallic_roughness, normal, emissive maps followed the old "
                                        "UVs and are dropped")


def test_a_merge_keeps_the_second_uv_set_only_when_every_object_has_one(tmp_path: Path) -> None:
    pbr_box(tmp_path / "box.glb")
    (part,) = trimesh.load(tmp_path / "box.glb", process=False).geometry.values()
    part.vertex_attributes["_lightmap"] = np.full((len(part.vertices), 2), 0.5, np.float32)
    with_plain_object(part, "lit", tmp_path / "two.glb")
    edit_glb_json(tmp_path / "two.glb", lambda tree: [primitive["attributes"].update(
        TEXCOORD_1=primitive["attributes"].pop("_lightmap")) for mesh in tree["meshes"]
        for primitive in mesh["primitives"] if "_lightmap" in primitive["attributes"]])
    assert load_mesh(tmp_path / "two.glb", object_name="lit").uvs2 is not None
    merged = load_mesh(tmp_path / "two.glb")
    assert merged.uvs2 is None
    assert "; the second UV set (TEXCOORD_1) of lit is dropped, as the others have none" in merged.notes[0]


def test_a_base_colour_map_on_another_uv_set_is_not_read_on_the_kept_uvs(tmp_path: Path) -> None:
    pbr_box(tmp_path / "box.glb")
    edit_glb_json(tmp_path / "box.glb",
                  lambda tree: tree["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"].update(texCoord=1))
    mesh = load_mesh(tmp_path / "box.glb")
    assert mesh.texture is None and mesh.notes[0] == ("the base colour map reads TEXCOORD_1, not the UVs texgen "
                                                      "paints (TEXCOORD_0), so it is not used")
    assert "normal" in mesh.material.maps  # the other maps are on TEXCOORD_0


@pytest.mark.parametrize("wrap", [REPEAT, MIRRORED_REPEAT, CLAMP_TO_EDGE])
def test_a_texture_transform_is_resampled_onto_the_plain_uvs(wrap: int) -> None:
    image = plane(7)  # 8 x 8; glTF UVs run from its top-left corner
    # a quarter of the map: the top right one
    np.testing.assert_array_equal(on_plain_uvs(image, {"offset": [0.5, 0.0], "scale": [0.5, 0.5]}, (wrap, wrap)),
                                  image[:4, 4:])
    # a quarter turn: u' = v, v' = 1 - u
    turned = on_plain_uvs(image, {"offset": [0.0, 1.0], "rotation": np.pi / 2}, (wrap, wrap))
    np.testing.assert_allclose(turned, image[::-1].transpose(1, 0, 2), atol=1)
    # twice across in u: the map, then what the wrap mode puts past its right edge, at twice the width
    twice = on_plain_uvs(image, {"scale": [2.0, 1.0]}, (wrap, CLAMP_TO_EDGE))
    beyond = {REPEAT: image, MIRRORED_REPEAT: image[:, ::-1], CLAMP_TO_EDGE: np.repeat(image[:, 7:], 8, axis=1)}[wrap]
    assert twice.shape == (8, 16, 3)
    np.testing.assert_array_equal(twice, np.concatenate([image, beyond], axis=1))


def test_a_glb_base_colour_map_with_a_texture_transform_is_read_on_the_plain_uvs(tmp_path: Path) -> None:
    maps = pbr_box(tmp_path / "box.glb")
    transform = {"offset": [0.5, 0.0], "scale": [0.5, 0.5]}

    def add_transform(tree: dict) -> None:
        tree["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"]["extensions"] = {
            "KHR_texture_transform": transform}
        tree["extensionsUsed"] = sorted(set(tree.get("extensionsUsed", [])) | {"KHR_texture_transform"})

    edit_glb_json(tmp_path / "box.glb", add_transform)
    mesh = load_mesh(tmp_path / "box.glb")
    np.testing.assert_array_equal(mesh.texture, maps["base"][:4, 4:])
    assert mesh.notes == ["the base colour map's KHR_texture_transform is applied: the 8 x 8 map is read as the "
                          "4 x 4 one it makes on the plain UVs, which the new map uses too"]
    written = glb_json(write_outputs(TextureResult(mesh, plane(5)), tmp_path / "out")["glb"])
    assert mesh.source_glb is not None  # written back whole: the new map, on the plain UVs, has no transform
    assert "extensions" not in written["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"]
    assert "KHR_texture_transform" not in written.get("extensionsUsed", [])


def test_a_malformed_texture_transform_is_named(tmp_path: Path) -> None:
    pbr_box(tmp_path / "box.glb")
    edit_glb_json(tmp_path / "box.glb", lambda tree: tree["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"]
                  .update(extensions={"KHR_texture_transform": {"scale": [2.0]}}))
    with pytest.raises(MeshError, match=r"box.glb: the base colour map's malformed KHR_texture_transform "
                                        r"\{'scale': \[2.0\]\} \(offset and scale take two numbers"):
        load_mesh(tmp_path / "box.glb")
    edit_glb_json(tmp_path / "box.glb", lambda tree: tree["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"]
                  .update(extensions={"KHR_texture_transform": [0.5, 0.5]}))
    with pytest.raises(MeshError, match=r"box.glb: the base colour map's malformed KHR_texture_transform \[0.5, 0.5\]"):
        load_mesh(tmp_path / "box.glb")


def test_materials_that_map_the_base_colour_differently_are_named() -> None:
    tree = {"materials": [{"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}}},
                          {"pbrMetallicRoughness": {"baseColorTexture": {"index": 0, "extensions": {
                              "KHR_texture_transform": {"scale": [2.0, 2.0]}}}}}],
            "meshes": [{"primitives": [{"material": 0}, {"material": 1}]}], "textures": [{"source": 0}]}
    assert base_colour_mapping(tree, "").transform is None
    del tree["materials"][1]["pbrMetallicRoughness"]["baseColorTexture"]["extensions"]
    tree["samplers"], tree["textures"] = [{"wrapS": MIRRORED_REPEAT}], [{"source": 0, "sampler": 0}]
    assert base_colour_mapping(tree, "") == ColourMapping(0, {}, (MIRRORED_REPEAT, REPEAT))
    # a transform that moves nothing is none; a texCoord in it names the UV set, not a move
    info = tree["materials"][1]["pbrMetallicRoughness"]["baseColorTexture"]
    info["extensions"] = {"KHR_texture_transform": {"offset": [0, 0], "scale": [1, 1], "texCoord": 0}}
    assert base_colour_mapping(tree, "").transform == {}


def test_a_generated_base_colour_drops_the_old_tint_and_keeps_the_rest(tmp_path: Path) -> None:
    pbr_box(tmp_path / "box.glb")
    mesh = load_mesh(tmp_path / "box.glb")
    result = texture_mesh(mesh, "box", generator=OracleGenerator(mesh), views=4, view_size=64, texture_size=64)
    np.testing.assert_allclose(result.mesh.material.base_color_factor, [1.0, 1.0, 1.0, 0.75], atol=1 / 255)
    assert sorted(result.mesh.material.maps) == sorted(mesh.material.maps)
    assert mesh.material.base_color_factor[0] == pytest.approx(0.5, abs=1 / 255)  # the input is left alone
    paths = write_outputs(result, tmp_path / "out")
    assert "Kd 1 1 1\n" in paths["mtl"].read_text()
    assert reloaded_material(paths["glb"]).normalTexture is not None


def test_a_new_unwrap_drops_the_maps_that_followed_the_old_uvs(tmp_path: Path) -> None:
    pbr_box(tmp_path / "box.glb")
    mesh = load_mesh(tmp_path / "box.glb", unwrap="always")
    assert mesh.material.maps == {} and mesh.material.metallic_factor == 0.25
    assert mesh.notes[-1].endswith("; the material's metallic_roughness, normal, occlusion, emissive maps followed "
                                   "the old UVs and are dropped")


def test_merged_scenes_keep_no_material_and_say_so(tmp_path: Path) -> None:
    pbr_box(tmp_path / "box.glb")
    (part,) = trimesh.load(tmp_path / "box.glb", process=False).geometry.values()
    with_plain_object(part, "metal", tmp_path / "two.glb")
    merged = load_mesh(tmp_path / "two.glb")
    assert merged.material is None
    assert "some had no UVs" not in merged.notes[0]
    assert merged.notes[0].endswith("; the other maps of the materials of metal (normal, roughness...) are not kept")


def test_objects_that_share_one_material_keep_their_uvs_texture_and_material(tmp_path: Path) -> None:
    """A scene split into objects that map one atlas (a character's body and head, say)."""
    maps = pbr_box(tmp_path / "box.glb")
    (part,) = trimesh.load(tmp_path / "box.glb", process=False).geometry.values()
    left, right = part.copy(), part.copy()
    left.visual.uv = left.visual.uv * 0.5  # each object in its own half of the atlas
    right.visual.uv = right.visual.uv * 0.5 + 0.5
    right.apply_translation([3.0, 0.0, 0.0])
    scene = trimesh.Scene()
    scene.add_geometry(left, node_name="left", geom_name="left")
    scene.add_geometry(right, node_name="right", geom_name="right")
    scene.export(tmp_path / "two.glb")
    merged = load_mesh(tmp_path / "two.glb")
    alone = [load_mesh(tmp_path / "two.glb", object_name=name) for name in ("left", "right")]
    np.testing.assert_array_equal(merged.texture, maps["base"])
    on_the_right = merged.positions[merged.faces].mean(axis=1)[:, 0] > 1.5
    for mesh, faces in zip(alone, (~on_the_right, on_the_right)):
        np.testing.assert_allclose(merged.uvs[merged.uv_faces[faces]], mesh.uvs[mesh.uv_faces], atol=1e-7)
    assert merged.material is not None and merged.material.same_as(alone[0].material)
    assert merged.notes[0].endswith("; they map one texture, so their UVs and it are kept as they are")


def test_the_base_colours_alpha_comes_back_with_the_new_colour(tmp_path: Path) -> None:
    """An alpha-tested card (a leaf): its cut-out stays, resampled to the new map's size."""
    base = np.zeros((8, 8, 4), np.uint8)
    base[..., :3] = plane(6)
    base[..., 3] = np.where(np.add.outer(np.arange(8), np.arange(8)) < 8, 255, 0)
    box = trimesh.creation.box()
    uv = np.random.default_rng(0).uniform(0.05, 0.95, (len(box.vertices), 2))
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=Image.fromarray(base, "RGBA"), alphaMode="MASK",
                                                   alphaCutoff=0.5)
    trimesh.Trimesh(box.vertices, box.faces, visual=trimesh.visual.TextureVisuals(uv=uv, material=material),
                    process=False).export(tmp_path / "leaf.glb")
    mesh = load_mesh(tmp_path / "leaf.glb")
    np.testing.assert_array_equal(mesh.texture_alpha, base[..., 3])
    paths = write_outputs(TextureResult(mesh, plane(7)), tmp_path / "same")
    written = np.asarray(Image.open(paths["albedo"]))
    assert written.shape == (8, 8, 4)
    np.testing.assert_array_equal(written[..., 3], base[..., 3])
    again = reloaded_material(paths["glb"])
    assert again.alphaMode == "MASK" and np.asarray(again.baseColorTexture).shape == (8, 8, 4)
    larger = np.repeat(np.repeat(plane(7), 4, axis=0), 4, axis=1)
    paths = write_outputs(TextureResult(mesh, larger), tmp_path / "larger")
    alpha = np.asarray(Image.open(paths["albedo"]))[..., 3]
    assert alpha.shape == (32, 32) and alpha[0, 0] == 255 and alpha[-1, -1] == 0


def test_opaque_textures_have_no_alpha(tmp_path: Path) -> None:
    pbr_box(tmp_path / "box.glb")
    assert load_mesh(tmp_path / "box.glb").texture_alpha is None


def test_tiled_objects_lose_their_alpha_and_say_so(tmp_path: Path) -> None:
    leaf = np.full((8, 8, 4), 255, np.uint8)
    leaf[:4, :, 3] = 0
    scene = trimesh.Scene()
    for index, image in enumerate([Image.fromarray(leaf, "RGBA"), Image.fromarray(plane(8))]):
        box = trimesh.creation.box()
        uv = np.random.default_rng(index).uniform(0.05, 0.95, (len(box.vertices), 2))
        visual = trimesh.visual.TextureVisuals(uv=uv, material=trimesh.visual.material.PBRMaterial(
            baseColorTexture=image))
        part = trimesh.Trimesh(box.vertices + [3.0 * index, 0, 0], box.faces, visual=visual, process=False)
        scene.add_geometry(part, node_name=f"part{index}", geom_name=f"part{index}")
    scene.export(tmp_path / "two.glb")
    merged = load_mesh(tmp_path / "two.glb")
    assert merged.texture_alpha is None and "; the alpha (cut-outs) of the textures of part0 is not kept" in \
        merged.notes[0]
    assert load_mesh(tmp_path / "two.glb", object_name="part0", unwrap="always").texture_alpha is None


def quantized_triangle(path: Path, uv_type: int = 5126, second_type: Optional[int] = None,
                       position_normalized: bool = False, uv_normalized: bool = True) -> None:
    """A one-triangle GLB with a material, its UVs stored as ``uv_type`` (5123: normalized unsigned
    shorts, or with ``uv_normalized`` False plain ones, as gltfpack stores them under a texture
    transform), maybe a TEXCOORD_1 of ``second_type``, and its positions as normalized shorts when asked."""
    dtypes = {5122: np.int16, 5123: np.uint16, 5126: np.float32}
    uv = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    arrays = [(np.array([[0, 0, 0], [32767, 0, 0], [0, 32767, 0]]) if position_normalized
               else np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]]), 5122 if position_normalized else 5126, "VEC3"),
              (uv * (65535 if uv_type == 5123 else 1), uv_type, "VEC2"), (np.arange(3), 5123, "SCALAR")]
    if second_type is not None:
        arrays.append((uv * (65535 if second_type == 5123 else 1), second_type, "VEC2"))
    binary, views, accessors = b"", [], []
    for index, (values, kind, shape) in enumerate(arrays):
        raw = values.astype(dtypes[kind]).tobytes()
        raw += b"\0" * (-len(raw) % 4)
        views.append({"buffer": 0, "byteOffset": len(binary), "byteLength": len(raw)})
        normalized = kind != 5126 and shape != "SCALAR" and (uv_normalized or index != 1)
        accessors.append({"bufferView": index, "componentType": kind, "count": 3, "type": shape}
                         | ({"normalized": True} if normalized else {}))
        binary += raw
    accessors[0] |= {"min": [0, 0, 0], "max": [32767 if position_normalized else 1] * 2 + [0]}
    attributes = {"POSITION": 0, "TEXCOORD_0": 1} | ({"TEXCOORD_1": 3} if second_type is not None else {})
    tree = {"asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
            "meshes": [{"primitives": [{"attributes": attributes, "indices": 2, "material": 0}]}],
            "materials": [{"pbrMetallicRoughness": {"baseColorFactor": [1, 1, 1, 1]}}], "accessors": accessors,
            "bufferViews": views, "buffers": [{"byteLength": len(binary)}]}
    path.write_bytes(pack_glb(tree, binary))


def with_mapped_material(path: Path, transforms: list[dict]) -> None:
    """Give the GLB at ``path`` a base colour and an emissive map (one 4 x 4 PNG) read through ``transforms``
    (KHR_texture_transform, one for each; {} for none), as gltfpack writes the maps of quantized UVs."""
    tree, binary = read_json(path), glb_binary(path.read_bytes())
    png = cv2.imencode(".png", np.full((4, 4, 3), 90, np.uint8))[1].tobytes()
    tree["bufferViews"].append({"buffer": 0, "byteOffset": len(binary), "byteLength": len(png)})
    tree |= {"images": [{"bufferView": len(tree["bufferViews"]) - 1, "mimeType": "image/png"}],
             "textures": [{"source": 0}], "extensionsUsed": ["KHR_texture_transform"]}
    infos = [{"index": 0} | ({"extensions": {"KHR_texture_transform": transform}} if transform else {})
             for transform in transforms]
    tree["materials"][0] |= {"emissiveTexture": infos[1], "emissiveFactor": [1, 1, 1]}
    tree["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"] = infos[0]
    tree["buffers"][0]["byteLength"] = len(binary) + len(png)
    path.write_bytes(pack_glb(tree, binary + png + b"\0" * (-len(png) % 4)))


def read_json_bytes(glb: bytes) -> dict:
    return json.loads(glb[20:20 + struct.unpack_from("<I", glb, 12)[0]])


def test_quantized_glb_attributes_are_dequantized_or_named(tmp_path: Path) -> None:
    """trimesh reads integer attributes unscaled (65535 for 1.0): normalized ones (core glTF UVs,
    KHR_mesh_quantization positions) are dequantized as glTF defines it, and the plain integer UVs that
    gltfpack scales with its maps' texture transform are read through it. UVs whose maps disagree are
    named, and texgen can still unwrap anew."""
    quantized_triangle(tmp_path / "packed.glb", uv_type=5123)
    mesh = load_mesh(tmp_path / "packed.glb")
    np.testing.assert_allclose(mesh.uvs[mesh.uv_faces], [[[0, 1], [1, 1], [0, 0]]])
    assert mesh.notes == [] and mesh.source_glb is not None  # written back as the file stores it
    quantized_triangle(tmp_path / "gltfpack.glb", uv_type=5123, uv_normalized=False)
    dequantize = {"offset": [0.1, 0.2], "scale": [0.5 / 65535, 0.5 / 65535]}
    with_mapped_material(tmp_path / "gltfpack.glb", [dequantize, dequantize])
    mesh = load_mesh(tmp_path / "gltfpack.glb")
    np.testing.assert_allclose(mesh.uvs[mesh.uv_faces], [[[0.1, 0.8], [0.6, 0.8], [0.1, 0.3]]], atol=1e-6)
    assert mesh.material.map_transforms == {}  # the maps lie on the UVs as read, and so are they written back
    assert mesh.notes[0].startswith("the UVs are stored as integers that the maps read through a texture transform")
    written = read_json_bytes(mesh.source_glb)
    uv_accessor = written["accessors"][written["meshes"][0]["primitives"][0]["attributes"]["TEXCOORD_0"]]
    assert uv_accessor["componentType"] == 5126 and "KHR_texture_transform" not in json.dumps(written["materials"])
    with_mapped_material(tmp_path / "gltfpack.glb", [dequantize, {}])
    with pytest.raises(MeshError, match=r"gltfpack.glb: the UVs \(TEXCOORD_0\) are stored as integers \(quantized\) "
                                        r"that texgen cannot read here: the maps read them through different texture "
                                        r"transforms.* export it with float UVs \(gltfpack -noq\), "
                                        r"or pass --unwrap always"):
        load_mesh(tmp_path / "gltfpack.glb")
    mesh = load_mesh(tmp_path / "gltfpack.glb", unwrap="always")
    assert mesh.has_uvs and any(note.endswith("the file's UVs are ignored anyway (--unwrap always)")
                                for note in mesh.notes)
    quantized_triangle(tmp_path / "second.glb", second_type=5123)
    np.testing.assert_allclose(load_mesh(tmp_path / "second.glb").uvs2, [[0, 1], [1, 1], [0, 0]])
    quantized_triangle(tmp_path / "float.glb", second_type=5126)
    np.testing.assert_allclose(load_mesh(tmp_path / "float.glb").uvs2, [[0, 1], [1, 1], [0, 0]])
    quantized_triangle(tmp_path / "positions.glb", position_normalized=True)
    np.testing.assert_array_equal(load_mesh(tmp_path / "positions.glb").positions, [[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    tree = read_json(tmp_path / "packed.glb")
    tree["accessors"][1]["count"] = 1000  # more UVs than the buffer holds
    (tmp_path / "short.glb").write_bytes(pack_glb(tree, glb_binary((tmp_path / "packed.glb").read_bytes())))
    with pytest.raises(MeshError, match=r"short.glb: cannot read its quantized vertex data \(accessor 1 reads past "
                                        r"the end of its buffer\)"):
        load_mesh(tmp_path / "short.glb")