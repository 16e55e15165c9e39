"""Outputs: GLB/OBJ round trips (per corner, user frame), overwrite refusal, atomic writes, previews."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from texgen.errors import TexgenError
from texgen.export import (OUTPUT_KINDS, atomic_write, contact_sheet, gltf_vertices, obj_bytes, output_paths,
                           texture_renders, view_picture, write_outputs)
from texgen.gltf_json import glb_binary, pack_glb, read_json, with_base_colour_map
from texgen.material import SAMPLER
from texgen.mesh import Mesh, load_mesh
from texgen.result import TextureResult

EVAL_MESHES = Path(__file__).resolve().parents[2] / "shared" / "eval-meshes"
EVAL_FILES = ["spot/spot_triangulated.obj", "bob/bob_tri.obj", "avocado/avocado.obj", "duck/Duck.glb",
              "box_textured/BoxTextured.glb"]


def seam_mesh() -> Mesh:
    """A tetrahedron in an odd frame, every face its own UV island, plus one degenerate face."""
    rng = np.random.default_rng(3)
    positions = rng.normal(size=(4, 3)) * 123.456 + [1000.0, -50.0, 7.0]
    faces = np.array([[0, 1, 2], [0, 3, 1], [1, 3, 2], [2, 3, 0], [0, 0, 1]])
    uvs = rng.uniform(0.02, 0.98, size=(15, 2))
    uv_faces = np.arange(15).reshape(5, 3)
    uv_faces[1, 0] = 0  # a UV shared by two faces: not every corner is split
    texture = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    return Mesh.from_arrays(positions, faces, uvs, uv_faces, texture, name="my tetra")


def result_of(mesh: Mesh, report: dict | None = None) -> TextureResult:
    return TextureResult(mesh, mesh.texture, report or {"seed": 7, "psnr": np.float32(38.5), "ratio": float("nan")})


def assert_same_corners(loaded: Mesh, mesh: Mesh, atol: float) -> None:
    """Per-corner positions and UVs of ``loaded`` equal those of ``mesh`` (user frame)."""
    assert loaded.faces.shape == mesh.faces.shape
    np.testing.assert_allclose(loaded.positions[loaded.faces], mesh.positions[mesh.faces],
                               atol=atol * max(1.0, float(np.abs(mesh.positions).max())), rtol=0)
    np.testing.assert_allclose(loaded.uvs[loaded.uv_faces], mesh.uvs[mesh.uv_faces], atol=atol, rtol=0)


def files_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


# ---------------------------------------------------------------------- round trips


def test_write_outputs_writes_every_file(tmp_path: Path) -> None:
    mesh = seam_mesh()
    paths = write_outputs(result_of(mesh), tmp_path / "new" / "folder")
    assert sorted(paths) == sorted(OUTPUT_KINDS)
    assert paths["glb"].name == "my_tetra.glb"
    assert files_in(paths["glb"].parent) == sorted(path.name for path in paths.values())
    report = json.loads(paths["report"].read_text())
    assert report == {"seed": 7, "psnr": 38.5, "ratio": None}
    assert paths["report"].read_text().startswith('{\n  "seed"')
    assert "map_Kd my_tetra_albedo.png" in paths["mtl"].read_text()
    assert "mtllib my_tetra.mtl" in paths["obj"].read_text()


def test_glb_reloads_with_texture_and_same_corners(tmp_path: Path) -> None:
    mesh = seam_mesh()
    paths = write_outputs(result_of(mesh), tmp_path, name="tetra")
    scene = trimesh.load(paths["glb"], process=False)
    (geometry,) = scene.geometry.values()
    material = geometry.visual.material
    assert material.baseColorTexture is not None
    np.testing.assert_array_equal(np.asarray(material.baseColorTexture.convert("RGB")), mesh.texture)
    assert material.metallicFactor == 0.0 and material.roughnessFactor == 1.0
    # glTF splits only where a position has several UVs: 15 corners, 14 distinct (position, uv) pairs
    assert len(geometry.vertices) == len(gltf_vertices(mesh)[0]) == 14
    loaded = load_mesh(paths["glb"])
    assert_same_corners(loaded, mesh, atol=1e-6)  # glTF stores float32
    np.testing.assert_array_equal(loaded.texture, mesh.texture)


def test_obj_round_trip_is_exact(tmp_path: Path) -> None:
    mesh = seam_mesh()
    paths = write_outputs(result_of(mesh), tmp_path, name="tetra")
    text = paths["obj"].read_text()
    assert text.count("\nv ") == 4 and text.count("\nvt ") == 15 and text.count("\nf ") == 5
    loaded = load_mesh(paths["obj"])
    assert len(loaded.positions) == len(mesh.positions)
    assert_same_corners(loaded, mesh, atol=0.0)
    np.testing.assert_array_equal(loaded.texture, mesh.texture)


def test_obj_polygons_are_written_back(tmp_path: Path) -> None:
    from test_mesh import QUADS_OBJ

    source = tmp_path / "quads.obj"
    source.write_text(QUADS_OBJ)
    mesh = load_mesh(source)
    text = obj_bytes(mesh, "quads.mtl", "quads").decode()
    assert [line for line in text.splitlines() if line.startswith("f ")] == ["f 1/1 2/2 4/4 3/3", "f 2/2 5/5 6/6 7/4"]
    (tmp_path / "out.obj").write_text(text)
    again = load_mesh(tmp_path / "out.obj")
    for name in ("positions", "faces", "uvs", "uv_faces", "polygons"):
        np.testing.assert_array_equal(getattr(again, name), getattr(mesh, name), err_msg=name)

    # a UV layout that cuts a quad along its diagonal (as a new unwrap may) cannot be a polygon: that
    # quad is written as its triangles, the other stays a quad
    mesh.uvs = np.concatenate([mesh.uvs, [[0.25, 0.25]]])
    mesh.uv_faces[1, 0] = len(mesh.uvs) - 1
    faces = [line for line in obj_bytes(mesh, "quads.mtl", "quads").decode().splitlines() if line.startswith("f ")]
    assert faces == ["f 1/1 2/2 4/4", "f 1/7 4/4 3/3", "f 2/2 5/5 6/6 7/4"]


def test_obj_concave_polygons_are_written_back_as_they_were(tmp_path: Path) -> None:
    from test_mesh import L_SHAPE_OBJ

    mesh = load_mesh(write_text(tmp_path / "l.obj", L_SHAPE_OBJ))
    text = obj_bytes(mesh, "l.mtl", "l").decode()
    assert [line for line in text.splitlines() if line.startswith("f ")] == \
        [line for line in L_SHAPE_OBJ.splitlines() if line.startswith("f ")]
    again = load_mesh(write_text(tmp_path / "out.obj", text))
    for name in ("positions", "faces", "uvs", "uv_faces", "polygons", "polygon_corners"):
        np.testing.assert_array_equal(getattr(again, name), getattr(mesh, name), err_msg=name)


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# A cube of quads with hard edges: 8 positions, 6 face normals, one UV square per face
HARD_CUBE_OBJ = "\n".join(
    [f"v {x} {y} {z}" for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]
    + ["vt 0 0", "vt 1 0", "vt 1 1", "vt 0 1"]
    + ["vn -1 0 0", "vn 1 0 0", "vn 0 -1 0", "vn 0 1 0", "vn 0 0 -1", "vn 0 0 1"]
    + [f"f {a}/1/{n} {b}/2/{n} {c}/3/{n} {d}/4/{n}" for n, (a, b, c, d) in enumerate(
        [(1, 2, 4, 3), (5, 7, 8, 6), (1, 5, 6, 2), (3, 4, 8, 7), (1, 3, 7, 5), (2, 6, 8, 4)], start=1)]) + "\n"


def test_the_files_normals_are_written_back(tmp_path: Path) -> None:
    """Hard edges stay hard: an OBJ's vn come back in the OBJ as they were, and split the GLB's vertices."""
    mesh = load_mesh(write_text(tmp_path / "cube.obj", HARD_CUBE_OBJ))
    assert mesh.normals.tolist() == [[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]]
    mesh.texture = np.zeros((4, 4, 3), np.uint8)
    paths = write_outputs(result_of(mesh), tmp_path / "out")
    text = paths["obj"].read_text().splitlines()
    assert [line for line in text if line.startswith("f ")] == \
        [line for line in HARD_CUBE_OBJ.splitlines() if line.startswith("f ")]
    written = [[float(x) for x in line.split()[1:]] for line in text if line.startswith("vn ")]
    np.testing.assert_array_equal(written, mesh.normals)
    glb = load_mesh(paths["glb"])
    assert len(glb.positions) == 24  # 4 corners per side: each keeps its side's normal
    partial = load_mesh(write_text(tmp_path / "partial.obj", HARD_CUBE_OBJ.replace("1/1/1 ", "1/1 ", 1)))
    assert partial.normals is None and partial.notes == [
        "1 of 24 face corners have no normal (a vn index), so the file's normals are not used: the exports write "
        "smooth vertex normals"]
    corners = glb.positions[glb.faces]
    flat = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    flat /= np.linalg.norm(flat, axis=1, keepdims=True)
    np.testing.assert_allclose(glb.normals[glb.normal_faces], np.repeat(flat[:, None], 3, axis=1), atol=1e-7)


def test_glb_loaded_mesh_re_exports_the_same_vertices(tmp_path: Path) -> None:
    first = write_outputs(result_of(seam_mesh()), tmp_path, name="first")
    loaded = load_mesh(first["glb"])
    second = write_outputs(result_of(loaded), tmp_path, name="second")
    again = load_mesh(second["glb"])
    for field in ("positions", "faces", "uvs", "uv_faces"):
        np.testing.assert_array_equal(getattr(again, field), getattr(loaded, field))


@pytest.mark.skipif(not EVAL_MESHES.is_dir(), reason=f"{EVAL_MESHES} is absent")
@pytest.mark.parametrize("relative", EVAL_FILES)
def test_eval_meshes_round_trip(tmp_path: Path, relative: str) -> None:
    mesh = load_mesh(EVAL_MESHES / relative)
    paths = write_outputs(result_of(mesh), tmp_path)
    from_glb = load_mesh(paths["glb"])
    assert_same_corners(from_glb, mesh, atol=1e-6)
    np.testing.assert_array_equal(from_glb.texture, mesh.texture)
    from_obj = load_mesh(paths["obj"])
    assert_same_corners(from_obj, mesh, atol=0.0)
    assert (mesh.normals is not None) == (relative != "spot/spot_triangulated.obj")  # spot's file has no vn
    if mesh.normals is not None:  # the file's normals come back: exactly from the OBJ, made unit length in the GLB
        np.testing.assert_array_equal(from_obj.normals[from_obj.normal_faces], mesh.normals[mesh.normal_faces])
        unit = mesh.normals / np.linalg.norm(mesh.normals, axis=1, keepdims=True)
        np.testing.assert_allclose(from_glb.normals[from_glb.normal_faces], unit[mesh.normal_faces], atol=1e-6)
    if relative.endswith(".obj"):
        assert len(from_obj.positions) == len(mesh.positions)
    else:  # a GLB painted whole is written back as itself, with the new map: its vertices come back exactly
        assert mesh.source_glb is not None
        np.testing.assert_array_equal(from_glb.positions, mesh.positions)
        np.testing.assert_array_equal(from_glb.uv_faces, mesh.uv_faces)


def test_mesh_without_uvs_is_refused(tmp_path: Path) -> None:
    mesh = seam_mesh()
    bare = Mesh.from_arrays(mesh.positions, mesh.faces, name="bare")
    with pytest.raises(TexgenError, match="no UV map"):
        write_outputs(TextureResult(bare, mesh.texture), tmp_path)
    assert files_in(tmp_path) == []


# ---------------------------------------------------------------------- overwrite and atomicity


def test_no_overwrite_without_flag(tmp_path: Path) -> None:
    mesh = seam_mesh()
    paths = write_outputs(result_of(mesh), tmp_path, name="tetra")
    before = {path: path.read_bytes() for path in paths.values()}
    mesh.texture = 255 - mesh.texture
    with pytest.raises(TexgenError, match=r"tetra\.glb already exists.*overwrite"):
        write_outputs(result_of(mesh), tmp_path, name="tetra")
    assert {path: path.read_bytes() for path in paths.values()} == before
    paths["glb"].unlink()  # any one existing file blocks the whole job
    with pytest.raises(TexgenError, match=r"tetra\.obj already exists"):
        write_outputs(result_of(mesh), tmp_path, name="tetra")
    assert not paths["glb"].exists()
    write_outputs(result_of(mesh), tmp_path, name="tetra", overwrite=True)
    assert paths["albedo"].read_bytes() != before[paths["albedo"]]
    assert files_in(tmp_path) == sorted(path.name for path in paths.values())


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert files_in(tmp_path) == ["a.bin"]


def test_atomic_write_failure_names_file_and_cleans_up(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked.png"
    blocked.mkdir()  # the rename onto a folder fails after the temp file is written
    with pytest.raises(TexgenError, match=r"cannot write .*blocked\.png"):
        atomic_write(blocked, b"data")
    with pytest.raises(TypeError):  # a failure inside the write itself
        atomic_write(tmp_path / "text.txt", "not bytes")  # type: ignore[arg-type]
    assert files_in(tmp_path) == ["blocked.png"]
    with pytest.raises(TexgenError, match=r"cannot write .*missing"):
        atomic_write(tmp_path / "missing" / "a.bin", b"data")


def test_atomic_write_on_a_full_disk(tmp_path: Path) -> None:
    """A file-size limit makes the kernel refuse the write (EFBIG), as a full disk does (ENOSPC)."""
    script = textwrap.dedent(f"""
        import resource, signal
        from texgen.errors import TexgenError
        from texgen.export import atomic_write
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            atomic_write({str(tmp_path / "big.bin")!r}, bytes(1 << 20))
        except TexgenError as exc:
            print(exc)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "cannot write" in done.stdout and "big.bin" in done.stdout and "disk space" in done.stdout
    assert files_in(tmp_path) == []


def test_failure_midway_removes_what_this_call_wrote(tmp_path: Path) -> None:
    mesh = seam_mesh()
    paths = output_paths(tmp_path, "tetra")
    paths["report"].mkdir()  # with overwrite, the report's rename fails after earlier files were placed
    with pytest.raises(TexgenError, match=r"cannot write .*tetra_report\.json"):
        write_outputs(result_of(mesh), tmp_path, name="tetra", overwrite=True)
    assert files_in(tmp_path) == ["tetra_report.json"]


def test_failing_encode_writes_nothing(tmp_path: Path) -> None:
    mesh = seam_mesh()
    with pytest.raises(TexgenError, match="report cannot be written as JSON"):
        write_outputs(result_of(mesh, {"bad": object()}), tmp_path, name="tetra")
    assert files_in(tmp_path) == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder(tmp_path: Path) -> None:
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(TexgenError, match=r"cannot write .*tetra\.glb.*permission"):
            write_outputs(result_of(seam_mesh()), tmp_path, name="tetra")
        assert files_in(tmp_path) == []
    finally:
        tmp_path.chmod(0o755)


# ---------------------------------------------------------------------- previews


def test_contact_sheet_layout_and_labels() -> None:
    tiles = [("rgb", np.full((40, 80, 3), 200, np.uint8)), ("float", np.ones((20, 20), np.float32)),
             ("rgba", np.zeros((10, 10, 4), np.uint8))]
    sheet = contact_sheet(tiles, columns=2)
    assert sheet.dtype == np.uint8 and sheet.ndim == 3 and sheet.shape[2] == 3
    square = contact_sheet(tiles, columns=2, tile_size=50)
    assert square.shape[1] == 2 * 54 + 4
    assert np.median(sheet.reshape(-1, 3), axis=0).tolist() == [24, 24, 24]  # dark background
    label_band = sheet[4:16, 4:40]
    assert (label_band > 150).any()  # the label is drawn
    with pytest.raises(ValueError):
        contact_sheet([], 2)


def test_view_picture_of_images_and_masks() -> None:
    image = torch.stack([torch.full((4, 6), 0.5), torch.zeros(4, 6), torch.full((4, 6), 2.0)])
    picture = view_picture(image)
    assert picture.dtype == np.uint8 and picture.shape == (4, 6, 3) and picture.flags.c_contiguous
    assert picture[0, 0].tolist() == [127, 0, 255]  # truncated, clipped
    mask = view_picture(torch.eye(4))
    assert mask.shape == (4, 4, 3) and mask[1, 1].tolist() == [255] * 3 and mask[0, 1].tolist() == [0] * 3


def test_texture_renders() -> None:
    pytest.importorskip("pyrender")
    mesh = seam_mesh()
    texture = np.zeros((64, 64, 3), np.uint8)
    texture[:, :, 0] = 255  # pure red surface
    renders = texture_renders(mesh, texture, size=64, views=3)
    assert [label for label, _ in renders] == ["textured, azimuth 30\N{DEGREE SIGN}",
                                               "textured, azimuth 150\N{DEGREE SIGN}",
                                               "textured, azimuth 270\N{DEGREE SIGN}"]
    for _, picture in renders:
        assert picture.shape == (64, 64, 3) and picture.dtype == np.uint8
        assert picture[0, 0].tolist() == [128, 128, 128]  # grey background
        assert ((picture[:, :, 0] == 255) & (picture[:, :, 1] == 0)).mean() > 0.01


# ---------------------------------------------------------------------- a GLB painted whole is written back


def rigged_box(path: Path, old_map: np.ndarray) -> tuple[dict, bytes]:
    """A textured GLB box with what a GLB built from the mesh would lose: a skin, a morph target, an
    animation, an empty node, extras and vertex colours. Returns its JSON and its old base colour PNG."""
    box = trimesh.creation.box()
    uv = np.random.default_rng(2).uniform(0.05, 0.95, (len(box.vertices), 2))
    trimesh.Trimesh(box.vertices, box.faces, process=False,
                    visual=trimesh.visual.TextureVisuals(uv=uv, image=Image.fromarray(old_map))).export(path)
    tree, binary = read_json(path), bytearray(glb_binary(path.read_bytes()))
    primitive = tree["meshes"][0]["primitives"][0]
    count = tree["accessors"][primitive["attributes"]["POSITION"]]["count"]

    def accessor(values: np.ndarray, kind: str, **extra) -> int:  # values appended to the binary chunk
        binary.extend(b"\0" * (-len(binary) % 4))
        tree["bufferViews"].append({"buffer": 0, "byteOffset": len(binary), "byteLength": values.nbytes})
        binary.extend(values.tobytes())
        component = {np.dtype(np.uint8): 5121, np.dtype(np.float32): 5126}[values.dtype]
        tree["accessors"].append({"bufferView": len(tree["bufferViews"]) - 1, "componentType": component,
                                  "count": len(values), "type": kind, **extra})
        return len(tree["accessors"]) - 1

    weights = np.zeros((count, 4), np.float32)
    weights[:, 0] = 1.0
    primitive["attributes"] |= {"JOINTS_0": accessor(np.zeros((count, 4), np.uint8), "VEC4"),
                                "WEIGHTS_0": accessor(weights, "VEC4"),
                                "COLOR_0": accessor(np.full((count, 3), 0.5, np.float32), "VEC3")}
    primitive["targets"] = [{"POSITION": accessor(np.zeros((count, 3), np.float32), "VEC3", min=[0.0] * 3,
                                                  max=[0.0] * 3)}]
    tree["nodes"].append({"name": "socket", "translation": [0.0, 1.0, 0.0]})
    socket = len(tree["nodes"]) - 1
    tree["scenes"][0]["nodes"].append(socket)
    mesh_node = next(index for index, node in enumerate(tree["nodes"]) if "mesh" in node)
    tree["nodes"][mesh_node]["skin"] = 0
    tree["skins"] = [{"joints": [socket]}]
    times = accessor(np.array([0.0, 1.0], np.float32), "SCALAR", min=[0.0], max=[1.0])
    moves = accessor(np.array([[0.0, 1.0, 0.0], [0.0, 2.0, 0.0]], np.float32), "VEC3")
    tree["animations"] = [{"channels": [{"sampler": 0, "target": {"node": socket, "path": "translation"}}],
                           "samplers": [{"input": times, "output": moves}]}]
    tree["extras"] = {"studio": "kept"}
    tree["buffers"][0]["byteLength"] = len(binary)
    path.write_bytes(pack_glb(tree, bytes(binary)))
    view = tree["bufferViews"][tree["images"][0]["bufferView"]]
    return tree, binary[view.get("byteOffset", 0):view.get("byteOffset", 0) + view["byteLength"]]


def test_a_glb_painted_whole_is_written_back_with_the_new_map(tmp_path: Path) -> None:
    """Nodes, skin, morph targets, animations and extras stay; the new map takes the old image's place
    and bytes; vertex colours, which glTF would multiply with it, go."""
    rng = np.random.default_rng(4)
    old_map, new_map = (rng.integers(0, 256, (16, 16, 3), np.uint8) for _ in range(2))
    tree, old_png = rigged_box(tmp_path / "rigged.glb", old_map)
    mesh = load_mesh(tmp_path / "rigged.glb")
    assert mesh.source_glb is not None
    assert mesh.notes == ["the file's vertex colours are left out of the outputs: the new texture replaces them (a "
                          "glTF viewer would multiply it by them)"]  # nothing of the rig is left out
    paths = write_outputs(TextureResult(mesh, new_map), tmp_path / "out")
    out = read_json(paths["glb"])
    for key in ("nodes", "scenes", "skins", "animations", "extras"):
        assert out[key] == tree[key], key
    primitive = out["meshes"][0]["primitives"][0]
    assert "COLOR_0" not in primitive["attributes"]
    # the colours' data goes with them: their accessor reads zeros, their view is gone, the others' data stays
    colours = tree["meshes"][0]["primitives"][0]["attributes"]["COLOR_0"]
    assert out["accessors"][colours] == {key: value for key, value in tree["accessors"][colours].items()
                                         if key not in ("bufferView", "byteOffset")}
    assert len(out["bufferViews"]) == len(tree["bufferViews"]) - 1
    assert [accessor for index, accessor in enumerate(out["accessors"]) if index != colours] == [
        accessor | {"bufferView": accessor["bufferView"] - (accessor["bufferView"] > tree["accessors"][colours][
            "bufferView"])} for index, accessor in enumerate(tree["accessors"]) if index != colours]
    assert primitive["targets"] == tree["meshes"][0]["primitives"][0]["targets"]
    assert len(out["images"]) == len(tree["images"]) and old_png not in paths["glb"].read_bytes()
    # and the texture object that read it, with its sampler: no unused texture is left behind
    assert len(out["textures"]) == len(tree["textures"]) and len(out["samplers"]) == len(tree.get("samplers", [1]))
    texture = out["textures"][out["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"]["index"]]
    assert out["samplers"][texture["sampler"]] == SAMPLER
    again = load_mesh(paths["glb"])
    np.testing.assert_array_equal(again.texture, new_map)
    for field in ("positions", "faces", "uvs", "uv_faces"):
        np.testing.assert_array_equal(getattr(again, field), getattr(mesh, field))

    named = load_mesh(tmp_path / "rigged.glb", object_name=tree["nodes"][0]["name"])  # one object: built anew
    assert named.source_glb is None and named.notes[-1].startswith(
        "the file's skin (rig), morph targets, animations are left out of the outputs")


def test_vertex_colours_that_something_else_reads_keep_their_data(tmp_path: Path) -> None:
    """A points primitive (not painted) reads the triangles' COLOR_0 too: it keeps it, and its data stays."""
    rng = np.random.default_rng(5)
    tree, _ = rigged_box(tmp_path / "points.glb", rng.integers(0, 256, (16, 16, 3), np.uint8))
    triangles = tree["meshes"][0]["primitives"][0]
    triangles_colours = triangles["attributes"]["COLOR_0"]
    tree["meshes"][0]["primitives"].append({"attributes": {"POSITION": triangles["attributes"]["POSITION"],
                                                           "COLOR_0": triangles_colours},
                                            "targets": triangles["targets"], "mode": 0})
    (tmp_path / "points.glb").write_bytes(pack_glb(tree, glb_binary((tmp_path / "points.glb").read_bytes())))
    mesh = load_mesh(tmp_path / "points.glb")
    out = read_json(write_outputs(TextureResult(mesh, rng.integers(0, 256, (16, 16, 3), np.uint8)),
                                  tmp_path / "out")["glb"])
    points = out["meshes"][0]["primitives"][1]
    assert "COLOR_0" not in out["meshes"][0]["primitives"][0]["attributes"] and points["attributes"]["COLOR_0"] == \
        triangles_colours
    assert out["accessors"] == tree["accessors"] and len(out["bufferViews"]) == len(tree["bufferViews"])
    assert gltf_validation([tmp_path / "out" / "points.glb"])["points.glb"]["errors"] == 0


def test_vertex_colours_keep_their_data_where_an_extension_may_read_accessors(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    tree, _ = rigged_box(tmp_path / "instanced.glb", rng.integers(0, 256, (16, 16, 3), np.uint8))
    tree["extensionsUsed"] = ["EXT_mesh_gpu_instancing"]  # its nodes name accessors texgen does not look for
    (tmp_path / "instanced.glb").write_bytes(pack_glb(tree, glb_binary((tmp_path / "instanced.glb").read_bytes())))
    out = read_json(write_outputs(TextureResult(load_mesh(tmp_path / "instanced.glb"),
                                                rng.integers(0, 256, (16, 16, 3), np.uint8)), tmp_path / "out")["glb"])
    assert "COLOR_0" not in out["meshes"][0]["primitives"][0]["attributes"]
    assert out["accessors"] == tree["accessors"] and len(out["bufferViews"]) == len(tree["bufferViews"])


def separate_gltf(folder: Path, old_map: np.ndarray) -> Path:
    """A textured box as a .gltf with its buffers in .bin files and its image in a .png beside it."""
    box = trimesh.creation.box()
    uv = np.random.default_rng(3).uniform(0.05, 0.95, (len(box.vertices), 2))
    files = trimesh.Trimesh(box.vertices, box.faces, process=False, visual=trimesh.visual.TextureVisuals(
        uv=uv, image=Image.fromarray(old_map))).export(file_type="gltf")
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    Image.fromarray(old_map).save(folder / "old_map.png")
    tree = json.loads(files["model.gltf"])
    tree["images"] = [{"uri": "old_map.png"}]  # the image in a file beside it
    (folder / "model.gltf").write_text(json.dumps(tree))
    return folder / "model.gltf"


def test_a_gltf_with_files_beside_it_is_written_back_as_one_glb(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    old_map, new_map = (rng.integers(0, 256, (16, 16, 3), np.uint8) for _ in range(2))
    mesh = load_mesh(separate_gltf(tmp_path / "separate", old_map))
    np.testing.assert_array_equal(mesh.texture, old_map)
    assert mesh.source_glb is not None and mesh.notes == []
    out = write_outputs(TextureResult(mesh, new_map), tmp_path / "out")["glb"]
    tree = read_json(out)
    assert len(tree["buffers"]) == 1 and all("uri" not in image for image in tree["images"])
    again = load_mesh(out)
    np.testing.assert_array_equal(again.texture, new_map)
    for field in ("positions", "faces", "uvs", "uv_faces"):
        np.testing.assert_array_equal(getattr(again, field), getattr(mesh, field))
    (tmp_path / "separate" / "old_map.png").unlink()  # a file it names is missing: the GLB is built anew
    assert load_mesh(tmp_path / "separate" / "model.gltf").source_glb is None


def test_a_shared_base_colour_image_stays_for_its_other_readers(tmp_path: Path) -> None:
    """The base colour image is also the emissive map: the new map is added beside it. A primitive
    without a material gets a plain one with the new map."""
    rng = np.random.default_rng(5)
    old_map, new_map = (rng.integers(0, 256, (16, 16, 3), np.uint8) for _ in range(2))
    tree, _ = rigged_box(tmp_path / "shared.glb", old_map)
    material = tree["materials"][0]
    material["emissiveTexture"] = {"index": material["pbrMetallicRoughness"]["baseColorTexture"]["index"]}
    (tmp_path / "shared.glb").write_bytes(pack_glb(tree, glb_binary((tmp_path / "shared.glb").read_bytes())))
    paths = write_outputs(TextureResult(load_mesh(tmp_path / "shared.glb"), new_map), tmp_path / "out")
    out = read_json(paths["glb"])
    assert len(out["images"]) == len(tree["images"]) + 1
    (geometry,) = trimesh.load(paths["glb"], process=False).geometry.values()
    np.testing.assert_array_equal(np.asarray(geometry.visual.material.baseColorTexture.convert("RGB")), new_map)
    np.testing.assert_array_equal(np.asarray(geometry.visual.material.emissiveTexture.convert("RGB")), old_map)

    del tree["meshes"][0]["primitives"][0]["material"]
    data = pack_glb(tree, glb_binary((tmp_path / "shared.glb").read_bytes()))
    plain = {"name": "plain", "pbrMetallicRoughness": {"metallicFactor": 0.0}}
    written = with_base_colour_map(data, b"PNG", {"wrapS": 10497}, plain)
    out = json.loads(written[20:20 + int.from_bytes(written[12:16], "little")])
    added = out["materials"][out["meshes"][0]["primitives"][0]["material"]]
    assert added["name"] == "plain" and added["pbrMetallicRoughness"]["metallicFactor"] == 0.0
    texture = out["textures"][added["pbrMetallicRoughness"]["baseColorTexture"]["index"]]
    assert out["samplers"][texture["sampler"]] == {"wrapS": 10497}
    view = out["bufferViews"][out["images"][texture["source"]]["bufferView"]]
    assert glb_binary(written)[view["byteOffset"]:view["byteOffset"] + view["byteLength"]] == b"PNG"


def test_a_glb_that_cannot_take_the_map_falls_back_to_one_built_from_the_mesh(tmp_path: Path, caplog) -> None:
    old_map = np.random.default_rng(9).integers(0, 256, (16, 16, 3), np.uint8)
    tree, _ = rigged_box(tmp_path / "odd.glb", old_map)
    mesh = load_mesh(tmp_path / "odd.glb")
    del tree["bufferViews"][0]["byteLength"]  # as a file that texgen misread would be
    mesh.source_glb = pack_glb(tree, glb_binary(mesh.source_glb))
    with caplog.at_level("WARNING", logger="texgen.export"):
        paths = write_outputs(TextureResult(mesh, old_map), tmp_path / "out")
    assert "the glTF file cannot take the new map (KeyError" in caplog.text
    assert read_json(paths["glb"])["asset"]["generator"] == "texgen"  # built from the mesh
    np.testing.assert_array_equal(load_mesh(paths["glb"]).texture, old_map)


def test_a_new_base_colour_whitens_the_written_back_materials_tint(tmp_path: Path) -> None:
    """The new map is the colour: as for a material texgen rebuilds, the tint goes and the opacity stays,
    while a repaired old map (a result of the mesh as loaded) keeps the file's tint."""
    from texgen.result import with_new_base_colour

    old_map = np.random.default_rng(6).integers(0, 256, (16, 16, 3), np.uint8)
    tree, _ = rigged_box(tmp_path / "tinted.glb", old_map)
    tree["materials"][0].setdefault("pbrMetallicRoughness", {})["baseColorFactor"] = [0.5, 0.25, 1.0, 0.75]
    (tmp_path / "tinted.glb").write_bytes(pack_glb(tree, glb_binary((tmp_path / "tinted.glb").read_bytes())))
    mesh = load_mesh(tmp_path / "tinted.glb")
    for result_mesh, factor in ((with_new_base_colour(mesh), [1.0, 1.0, 1.0, 0.75]), (mesh, [0.5, 0.25, 1.0, 0.75])):
        paths = write_outputs(TextureResult(result_mesh, old_map), tmp_path / "out", overwrite=True)
        assert read_json(paths["glb"])["materials"][0]["pbrMetallicRoughness"]["baseColorFactor"] == factor


# ---------------------------------------------------------------------- the Khronos glTF validator on every GLB path

ROOT = Path(__file__).resolve().parents[1]
VALIDATOR = ROOT / ".gltf-validator" / "node_modules" / "gltf-validator" / "index.js"


def gltf_validation(paths: list[Path]) -> dict[str, dict]:
    """The Khronos glTF validator's verdict on each file (scripts/setup.sh installs it with npm)."""
    import shutil

    if shutil.which("node") is None or not VALIDATOR.is_file():
        pytest.skip("no Khronos glTF validator: scripts/setup.sh installs it where npm is available")
    run = subprocess.run(["node", str(Path(__file__).with_name("gltf_validate.js")), *map(str, paths)],
                         env={**os.environ, "GLTF_VALIDATOR": str(VALIDATOR)}, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    return {Path(report["file"]).name: report for report in map(json.loads, run.stdout.splitlines())}


def test_every_glb_written_passes_the_khronos_validator(tmp_path: Path) -> None:
    """Written back whole (a sample asset, a rigged file, a shared image) or built from the mesh (an OBJ, one
    object of a GLB, an eval mesh), every GLB is valid glTF 2.0 without a warning."""
    from texgen.result import with_new_base_colour

    rng = np.random.default_rng(7)
    old_map, new_map = (rng.integers(0, 256, (16, 16, 3), np.uint8) for _ in range(2))
    rigged_box(tmp_path / "rigged.glb", old_map)
    inputs = {"vase": (ROOT / "assets" / "vase.glb", {}), "rigged": (tmp_path / "rigged.glb", {}),
              "crate": (ROOT / "assets" / "crate.obj", {}),
              "one-object": (tmp_path / "rigged.glb",
                             {"object_name": read_json(tmp_path / "rigged.glb")["nodes"][0]["name"]})}
    inputs["separate"] = (separate_gltf(tmp_path / "separate", old_map), {})
    tree, _ = rigged_box(tmp_path / "transformed.glb", old_map)  # its base colour map read through a transform
    tree["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"]["extensions"] = {
        "KHR_texture_transform": {"offset": [0.25, 0.0], "scale": [0.5, 0.5]}}
    tree["extensionsUsed"] = ["KHR_texture_transform"]
    (tmp_path / "transformed.glb").write_bytes(pack_glb(tree, glb_binary((tmp_path / "transformed.glb").read_bytes())))
    inputs["transformed"] = (tmp_path / "transformed.glb", {})
    import trimesh  # a Draco-compressed file, written back with its compressed geometry as it is

    (tmp_path / "draco.glb").write_bytes(trimesh.exchange.gltf.export_glb(
        trimesh.load(ROOT / "assets" / "vase.glb", process=False), extension_draco=True))
    inputs["draco"] = (tmp_path / "draco.glb", {})
    from test_mesh import quantized_normals_box  # normalized byte normals, no UVs: built from the mesh, unwrapped

    quantized_normals_box(tmp_path / "quantized.glb")
    inputs["quantized"] = (tmp_path / "quantized.glb", {})
    from test_material import quantized_triangle, with_mapped_material  # gltfpack's UVs, written back as floats

    quantized_triangle(tmp_path / "gltfpack.glb", uv_type=5123, uv_normalized=False)
    with_mapped_material(tmp_path / "gltfpack.glb", [{"offset": [0.1, 0.2], "scale": [0.5 / 65535] * 2}] * 2)
    inputs["gltfpack"] = (tmp_path / "gltfpack.glb", {})
    inputs |= {path.parent.name: (path, {}) for path in sorted(EVAL_MESHES.glob("*/*.glb"))}
    written = []
    for name, (path, options) in inputs.items():
        mesh = load_mesh(path, **options)
        texture = rng.integers(0, 256, (64, 64, 3), np.uint8)
        written.append(write_outputs(TextureResult(with_new_base_colour(mesh), texture), tmp_path / "out",
                                     name=name)["glb"])
        assert (mesh.source_glb is not None) == (name not in ("crate", "one-object", "quantized")), name
    for name, report in gltf_validation(written).items():
        assert report["errors"] == 0 and report["warnings"] == 0, (name, report["messages"])
