"""Mesh input: every format keeps the user's vertices, faces and per-corner UVs; bad input is named."""

from __future__ import annotations

import json
import logging
import struct
from pathlib import Path

import numpy as np
import pytest

from texgen.errors import MeshError
from texgen.export import obj_bytes
from texgen.gltf_json import glb_binary, pack_glb, read_json, with_attribute_renamed
from texgen.mesh import Mesh, companion_files, load_mesh, row_groups, sorted_unique
from texgen.mesh import _obj_skeleton as ONE_PART_SKELETON

trimesh = pytest.importorskip("trimesh")
Image = pytest.importorskip("PIL.Image")

ASSETS = Path(__file__).resolve().parents[1] / "assets"
EVAL_MESHES = Path(__file__).resolve().parents[2] / "shared" / "eval-meshes"

# A cube with 8 vertices and 14 UVs in the classic cross layout: positions are shared, UVs are
# split at the seams, faces are listed out of order and the values carry many digits.
CUBE_OBJ = """\
# a hand-written cube with UV seams
v -0.123456789012345 -1.5 1.0000000000000002
v 1.25 -1.5 1.0000000000000002
v -0.123456789012345 1.5 1.0000000000000002
v 1.25 1.5 1.0000000000000002
v -0.123456789012345 1.5 -1.1
v 1.25 1.5 -1.1
v -0.123456789012345 -1.5 -1.1
v 1.25 -1.5 -1.1
vt 0.375 0.0
vt 0.625 0.0
vt 0.375 0.25
vt 0.625 0.25
vt 0.375 0.5
vt 0.625 0.5
vt 0.375 0.75
vt 0.625 0.75
vt 0.375 1.0
vt 0.625 1.0
vt 0.875 0.0
vt 0.875 0.25
vt 0.125 0.0
vt 0.3333333333333333 0.25
f 5/7 6/8 8/10
f 1/1 2/2 3/3
f 3/3 2/2 4/4
f 3/3 4/4 5/5
f 5/5 4/4 6/6
f 5/7 8/10 7/9
f 2/2 8/11 4/4
f 8/11 6/12 4/4
f 7/13 1/1 5/14
f 1/1 3/3 5/14
f 7/1 8/2 1/3
f 1/3 8/2 2/4
"""


def parse_obj(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The file's own v, vt and triangle corners (v index, vt index), read without trimesh."""
    positions, uvs, corners = [], [], []
    for line in path.read_text().splitlines():
        head, _, rest = line.partition(" ")
        if head == "v":
            positions.append([float(x) for x in rest.split()[:3]])
        elif head == "vt":
            uvs.append([float(x) for x in rest.split()[:2]])
        elif head == "f":
            refs = [token.split("/") for token in rest.split()]
            assert len(refs) == 3, "the test files hold triangles only"
            corners.append([[int(r[0]) - 1, int(r[1]) - 1] for r in refs])
    corners = np.array(corners)
    return np.array(positions), np.array(uvs), corners[:, :, 0], corners[:, :, 1]


def read_glb_primitive(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """POSITION, TEXCOORD_0 (as stored: v down) and indices of a one-primitive GLB, without trimesh."""
    data = path.read_bytes()
    json_length = struct.unpack_from("<I", data, 12)[0]
    gltf = json.loads(data[20:20 + json_length])
    binary = data[28 + json_length:]
    dtypes = {5121: np.uint8, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
    widths = {"SCALAR": 1, "VEC2": 2, "VEC3": 3}

    def accessor(index: int) -> np.ndarray:
        spec = gltf["accessors"][index]
        view = gltf["bufferViews"][spec["bufferView"]]
        assert "byteStride" not in view, "the test files hold tightly packed arrays"
        start = view.get("byteOffset", 0) + spec.get("byteOffset", 0)
        count = spec["count"] * widths[spec["type"]]
        return np.frombuffer(binary, dtypes[spec["componentType"]], count, start).reshape(spec["count"], -1)

    (primitive,) = gltf["meshes"][0]["primitives"]
    return (accessor(primitive["attributes"]["POSITION"]), accessor(primitive["attributes"]["TEXCOORD_0"]),
            accessor(primitive["indices"]).reshape(-1, 3))


def textured_box(uv_seed: int = 0, offset: tuple[float, float, float] = (0, 0, 0)):
    """A trimesh box with per-vertex UVs and a random 16 x 16 texture."""
    rng = np.random.default_rng(uv_seed)
    box = trimesh.creation.box(extents=(1.0, 2.0, 3.0))
    visual = trimesh.visual.TextureVisuals(uv=rng.uniform(0.01, 0.99, (len(box.vertices), 2)),
                                           image=Image.fromarray(rng.integers(0, 256, (16, 16, 3), np.uint8)))
    return trimesh.Trimesh(box.vertices + offset, box.faces, visual=visual, process=False)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


TRIANGLE = "v 0 0 0\nv 1 0 0\nv 0 1 0\n"


# ---------------------------------------------------------------------- formats, exactly


def test_obj_keeps_vertices_faces_and_uv_seams_exactly(tmp_path: Path) -> None:
    path = write(tmp_path / "cube.obj", CUBE_OBJ)
    positions, uvs, face_v, face_vt = parse_obj(path)
    mesh = load_mesh(path)
    # trimesh splits OBJ vertices at UV seams; the weld gives back the file's 8 vertices in order
    np.testing.assert_array_equal(mesh.positions, positions)
    np.testing.assert_array_equal(mesh.faces, face_v)
    np.testing.assert_array_equal(mesh.uvs[mesh.uv_faces], uvs[face_vt])
    assert mesh.notes == []
    # a seam stays a seam: vertex 0 (file's 1) carries two different UVs in the file and in the mesh
    at_vertex_0 = {tuple(uv) for uv in mesh.uvs[mesh.uv_faces][mesh.faces == 0]}
    assert at_vertex_0 == {tuple(uv) for uv in uvs[face_vt][face_v == 0]} and len(at_vertex_0) == 2


# OBJ files of one part, which trimesh reads as a skeleton (their first face) for their material
ONE_PART_OBJS = {
    "textured": "mtllib tex.mtl\no crate\nusemtl wood\n" + CUBE_OBJ,
    "colours": "v 0 0 0 1 0 0\nv 1 0 0 0 1 0\nv 0 1 0 0 0 1\nv 1 1 0 1 1 1\nf 1 2 3\nf 2 4 3\n",
    "polygons": ("g part\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 0.5 1.5 0\nvt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\n"
                 "vt 0.5 1\nvn 0 0 1\nf\t-5/-5/-1 -4/-4/-1 -3/-3/-1 -2/-2/-1\nf 3/3/1 5/5/1 4/4/1\n"),
}


@pytest.mark.parametrize("name", ONE_PART_OBJS)
def test_obj_of_one_part_reads_as_when_trimesh_reads_it_all(tmp_path: Path, name: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    import texgen.mesh as mesh_module

    path = write(tmp_path / f"{name}.obj", ONE_PART_OBJS[name])
    write(tmp_path / "tex.mtl", "newmtl wood\nKd 0.8 0.7 0.6\nmap_Kd tex.png\n")
    cv2.imwrite(str(tmp_path / "tex.png"), np.random.default_rng(5).integers(0, 256, (16, 16, 3), np.uint8))
    skeletons = []
    monkeypatch.setattr(mesh_module, "_obj_skeleton", lambda *args: skeletons.append(
        ONE_PART_SKELETON(*args)) or skeletons[-1])
    ours = load_mesh(path)
    assert skeletons and skeletons[0] is not None
    monkeypatch.setattr(mesh_module, "_obj_skeleton", lambda *args: None)  # trimesh reads the whole file
    theirs = load_mesh(path)
    for key, value in vars(theirs).items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(getattr(ours, key), value, err_msg=key)
        elif not key.startswith("_"):
            assert repr(getattr(ours, key)) == repr(value), key
    assert (ours.texture is not None) == (name == "textured")


def test_obj_of_one_object_is_picked_by_its_name(tmp_path: Path) -> None:
    """trimesh names an OBJ of one mesh after the file: its ``o`` name picks it too."""
    path = write(tmp_path / "cube.obj", "o Cube\n" + CUBE_OBJ)
    assert len(load_mesh(path, object_name="Cube").faces) == 12
    assert len(load_mesh(path, object_name="cube.obj").faces) == 12
    with pytest.raises(MeshError, match=r"cube.obj: no object named 'Sphere'; objects: cube.obj/Cube"):
        load_mesh(path, object_name="Sphere")


def quad_object(name: str, x: float, material: str, relative: bool) -> str:
    """An OBJ object: ``o`` line, usemtl, a square of 4 vertices and 4 UVs at x, two triangles."""
    corners = "f -4/-4 -3/-3 -2/-2\nf -4/-4 -2/-2 -1/-1\n" if relative else ""
    square = "".join(f"v {x + a} {b} 0\n" for a, b in ((0, 0), (1, 0), (1, 1), (0, 1)))
    return f"o {name}\nusemtl {material}\n{square}vt 0.1 0.1\nvt 0.9 0.1\nvt 0.9 0.9\nvt 0.1 0.9\n{corners}"


@pytest.mark.parametrize("materials", [("Red", "Blue"), ("Red", "Red")], ids=["own materials", "one material"])
def test_obj_of_several_objects_picks_one_by_its_o_name(tmp_path: Path, materials: tuple[str, str]) -> None:
    """trimesh merges an OBJ's objects by material; --object NAME keeps the faces under ``o NAME`` alone,
    with its own vertices, UVs and material."""
    for name, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
        Image.fromarray(np.full((8, 8, 3), colour, np.uint8)).save(tmp_path / f"{name}.png")
    write(tmp_path / "two.mtl", "newmtl Red\nmap_Kd red.png\nnewmtl Blue\nmap_Kd blue.png\n")
    text = ("mtllib two.mtl\n" + quad_object("Left", 0, materials[0], relative=True)
            + quad_object("Right", 3, materials[1], relative=False) + "f 5/5 6/6 7/7\nf 5/5 7/7 8/8\n")
    path = write(tmp_path / "two.obj", text)
    assert len(load_mesh(path).faces) == 4
    for name, x, material in (("Left", 0, materials[0]), ("Right", 3, materials[1])):
        alone = load_mesh(path, object_name=name)
        assert len(alone.faces) == 2 and len(alone.positions) == 4 and len(alone.uvs) == 4, name
        np.testing.assert_array_equal(alone.positions[:, 0].min(), x)
        np.testing.assert_array_equal(alone.uvs, [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]])  # not tiled
        assert alone.texture[0, 0].tolist() == ([200, 30, 30] if material == "Red" else [30, 30, 200])
        assert any(f"kept the object '{name}'" in note for note in alone.notes)
    with pytest.raises(MeshError, match=r"no object named 'Middle'; objects: .*; its o lines name Left, Right"):
        load_mesh(path, object_name="Middle")
    write(tmp_path / "empty.obj", text + "o Empty\n")
    with pytest.raises(MeshError, match=r"empty.obj: the object 'Empty' has no faces"):
        load_mesh(tmp_path / "empty.obj", object_name="Empty")


def test_obj_vertices_kept_apart_at_one_position_stay_apart(tmp_path: Path) -> None:
    """Hard edges: two file vertices at one position are not welded; an unused vertex stays too."""
    path = write(tmp_path / "split.obj", TRIANGLE + "v 1 0 0\nv 1 1 0\nv 5 5 5\nvt 0 0\nvt 1 0\nvt 0 1\nvt 1 1\n"
                 "f 1/1 2/2 3/3\nf 4/2 5/4 3/3\n")
    positions, _, face_v, _ = parse_obj(path)
    mesh = load_mesh(path)
    np.testing.assert_array_equal(mesh.positions, positions)
    np.testing.assert_array_equal(mesh.faces, face_v)


def parse_obj_positions(path: Path) -> np.ndarray:
    return np.array([[float(x) for x in line.split()[1:4]] for line in path.read_text().splitlines()
                     if line.startswith("v ")])


# two quads side by side; the second's last corner is a vertex of its own at the first quad's corner (4)
QUADS_OBJ = TRIANGLE + """v 1 1 0
v 2 0 0
v 2 1 0
v 1 1 0
vt 0 0
vt 0.5 0
vt 0 1
vt 0.5 1
vt 1 0
vt 1 1
f 1/1 2/2 4/4 3/3
f 2/2 5/5 6/6 7/4
"""


def test_obj_polygons_keep_the_files_lists_as_triangle_fans(tmp_path: Path) -> None:
    path = write(tmp_path / "quads.obj", QUADS_OBJ)
    mesh = load_mesh(path)
    np.testing.assert_array_equal(mesh.positions, parse_obj_positions(path))  # vertex 7 stays apart from 4
    np.testing.assert_array_equal(mesh.uvs, [[0, 0], [0.5, 0], [0, 1], [0.5, 1], [1, 0], [1, 1]])
    assert mesh.polygons.tolist() == [4, 4]
    assert mesh.faces.tolist() == [[0, 1, 3], [0, 3, 2], [1, 4, 5], [1, 5, 6]]
    assert mesh.uv_faces.tolist() == [[0, 1, 3], [0, 3, 2], [1, 4, 5], [1, 5, 3]]
    assert len(np.unique(mesh.face_islands)) == 1


# An L-shaped hexagon (corner 3 is reflex: a fan from corner 0 would cover the notch) with its own UVs
# in the same shape, and a convex quad beside it
L_SHAPE_OBJ = """\
v 0 0 0
v 2 0 0
v 2 1 0
v 1 1 0
v 1 2 0
v 0 2 0
v 3 0 0
v 3 1 0
vt 0 0
vt 0.5 0
vt 0.5 0.25
vt 0.25 0.25
vt 0.25 0.5
vt 0 0.5
vt 0.75 0
vt 0.75 0.25
f 3/3 4/4 5/5 6/6 1/1 2/2
f 2/2 7/7 8/8 3/3
"""


def test_obj_concave_polygons_are_cut_inside_themselves(tmp_path: Path) -> None:
    mesh = load_mesh(write(tmp_path / "l.obj", L_SHAPE_OBJ))
    assert mesh.polygons.tolist() == [6, 4] and len(mesh.faces) == 6
    corners = mesh.positions[mesh.faces]
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    assert (cross[:, 2] > 0).all()  # wound like the polygons (counter-clockwise seen from +Z)
    assert cross[:4, 2].sum() / 2 == pytest.approx(3.0)  # the L's area: its triangles do not overlap
    assert mesh.faces[4:].tolist() == [[1, 6, 7], [1, 7, 2]]  # the convex quad stays a fan
    np.testing.assert_array_equal(mesh.uvs[mesh.uv_faces], mesh.positions[mesh.faces][:, :, :2] / 4)
    assert (mesh.face_ok).all() and len(np.unique(mesh.face_islands)) == 1


def test_obj_polygons_without_uvs_keep_their_polygons_through_the_unwrap(tmp_path: Path) -> None:
    path = write(tmp_path / "pentagon.obj", TRIANGLE + "v 1 1 0\nv 0.5 1.5 0\nf 1 2 4 5 3\n")
    mesh = load_mesh(path)
    assert mesh.polygons.tolist() == [5] and mesh.faces.tolist() == [[0, 1, 3], [0, 3, 4], [0, 4, 2]]
    assert mesh.has_uvs and mesh.uv_faces.shape == (3, 3)  # xatlas's, for the same triangles


# Two objects, each written after the faces of the one before; the second's first vertex sits at the
# first's vertex 2 and stays apart, and the last face reaches back into the first object.
TWO_OBJECTS_OBJ = """\
mtllib two.mtl
usemtl skin
o first
v 0 0 0
v 1 0 0
v 1 1 0
v 0 1 0
vt 0.1 0.1
vt 0.4 0.1
vt 0.4 0.4
vt 0.6 0.6
vt 0.6 0.9
vt 0.9 0.9
f 1/1 2/2 3/3
f 1/4 3/6 4/5
o second
v 1 0 0
v 2 0 0.5
v 2 1 0.5
vt 0.1 0.6
vt 0.4 0.6
vt 0.4 0.9
f 5/7 6/8 7/9
f 7/9 3/3 5/7
"""


def to_relative(text: str) -> str:
    """The OBJ text with every face index written relative to the v/vt lines above it (-1: the last)."""
    counts, lines = {"v": 0, "vt": 0}, []
    for line in text.splitlines():
        head = line.split(" ", 1)[0]
        if head in counts:
            counts[head] += 1
        elif head == "f":
            line = "f " + " ".join("/".join(str(int(index) - 1 - counts[kind])
                                            for kind, index in zip(("v", "vt"), token.split("/")))
                                   for token in line.split()[1:])
        lines.append(line)
    return "\n".join(lines) + "\n"


def test_obj_relative_indices_count_back_from_the_face(tmp_path: Path) -> None:
    """trimesh counts negative indices from the end of the file; OBJ counts them from the face's line."""
    image = np.random.default_rng(4).integers(0, 256, (8, 8, 3), np.uint8)
    Image.fromarray(image).save(tmp_path / "skin.png")
    write(tmp_path / "two.mtl", "newmtl skin\nmap_Kd skin.png\n")
    positions, uvs, face_v, face_vt = parse_obj(write(tmp_path / "absolute.obj", TWO_OBJECTS_OBJ))
    relative = write(tmp_path / "relative.obj", to_relative(TWO_OBJECTS_OBJ))
    assert relative.read_text().endswith("f -3/-3 -2/-2 -1/-1\nf -1/-1 -5/-7 -3/-3\n")
    mesh = load_mesh(relative)
    np.testing.assert_array_equal(mesh.positions, positions)  # the file's own 7 vertices, kept-apart ones too
    np.testing.assert_array_equal(mesh.faces, face_v)
    np.testing.assert_array_equal(mesh.uvs[mesh.uv_faces], uvs[face_vt])
    np.testing.assert_array_equal(mesh.texture, image)  # the rewritten file still finds its material
    assert mesh.notes == []


def test_obj_relative_indices_in_polygons(tmp_path: Path) -> None:
    text = TWO_OBJECTS_OBJ.replace("f 1/1 2/2 3/3\nf 1/4 3/6 4/5\n", "f 1/1 2/2 3/3 4/5\n")
    truth = load_mesh(write(tmp_path / "absolute.obj", text))
    mesh = load_mesh(write(tmp_path / "relative.obj", to_relative(text)))
    assert len(mesh.faces) == 4
    np.testing.assert_array_equal(mesh.positions[mesh.faces], truth.positions[truth.faces])
    np.testing.assert_array_equal(mesh.uvs[mesh.uv_faces], truth.uvs[truth.uv_faces])


def test_obj_lines_continued_with_a_backslash(tmp_path: Path) -> None:
    path = write(tmp_path / "continued.obj",
                 "v 0 0 \\\n0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nf 1/1 2/2 \\\r\n3/3\n")
    mesh = load_mesh(path)
    np.testing.assert_array_equal(mesh.positions, [[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(mesh.faces, [[0, 1, 2]])
    np.testing.assert_array_equal(mesh.uvs[mesh.uv_faces], [[[0, 0], [1, 0], [0, 1]]])
    # errors name the line of the file, counting the lines that were joined
    write(path, path.read_text() + "f 1/1 2/2 \\\n4/3\n")
    with pytest.raises(MeshError, match="continued.obj: line 10: a face refers to v 4"):
        load_mesh(path)
    write(path, "v 0 0 \\\n0\n" + TRIANGLE + "f 1 2 x\n")
    with pytest.raises(MeshError, match="continued.obj: line 6: cannot read the face 'f 1 2 x'"):
        load_mesh(path)


OBJ_FILES = [ASSETS / "crate.obj", ASSETS / "creature.obj", EVAL_MESHES / "spot" / "spot_triangulated.obj",
             EVAL_MESHES / "bob" / "bob_tri.obj", EVAL_MESHES / "avocado" / "avocado.obj"]


@pytest.mark.parametrize("path", OBJ_FILES, ids=lambda p: p.name)
def test_real_obj_files_keep_every_corner(path: Path) -> None:
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    positions, uvs, face_v, face_vt = parse_obj(path)
    mesh = load_mesh(path)
    assert len(mesh.positions) == len(positions)  # the weld keeps the original vertex count
    np.testing.assert_array_equal(mesh.positions[mesh.faces], positions[face_v])
    np.testing.assert_array_equal(mesh.uvs[mesh.uv_faces], uvs[face_vt])
    assert mesh.texture is not None and mesh.texture.dtype == np.uint8


COLOURS_NOTE = ("the file's vertex colours are left out of the outputs: the new texture replaces them (a glTF "
                "viewer would multiply it by them)")


@pytest.mark.parametrize("suffix", [".glb", ".ply", ".obj"])
def test_vertex_colours_are_named_as_left_out(tmp_path: Path, suffix: str) -> None:
    box = trimesh.creation.box()
    colours = np.random.default_rng(4).integers(0, 256, (len(box.vertices), 4), np.uint8)
    path = tmp_path / f"painted{suffix}"
    trimesh.Trimesh(box.vertices, box.faces, vertex_colors=colours, process=False).export(path)
    assert load_mesh(path, unwrap="never").notes == [COLOURS_NOTE]
    trimesh.Trimesh(box.vertices, box.faces, process=False).export(path)
    assert load_mesh(path, unwrap="never").notes == []


def test_vertex_colours_of_a_textured_glb_are_named_as_left_out(tmp_path: Path) -> None:
    """trimesh drops COLOR_0 when the mesh is textured: the note comes from the file's JSON."""
    box = textured_box()
    box.vertex_attributes["color"] = np.full((len(box.vertices), 4), 200, np.uint8)
    box.export(tmp_path / "custom.glb")  # trimesh writes a custom attribute as _color
    path = tmp_path / "painted.glb"
    path.write_bytes(with_attribute_renamed((tmp_path / "custom.glb").read_bytes(), read_json(tmp_path / "custom.glb"),
                                            "_color", "COLOR_0"))
    assert "COLOR_0" in read_json(path)["meshes"][0]["primitives"][0]["attributes"]
    mesh = load_mesh(path)
    assert mesh.notes == [COLOURS_NOTE] and mesh.texture is not None


def test_skin_morph_targets_and_animations_are_kept_whole_or_named_as_left_out(tmp_path: Path) -> None:
    path = tmp_path / "box.glb"
    textured_box().export(path)
    tree = read_json(path)
    binary = path.read_bytes()[28 + struct.unpack_from("<I", path.read_bytes(), 12)[0]:]
    primitive = tree["meshes"][0]["primitives"][0]
    primitive["targets"] = [{"POSITION": primitive["attributes"]["POSITION"]}]  # a morph target as large as the mesh
    tree["skins"] = [{"joints": [0]}]
    tree["animations"] = [{"channels": [], "samplers": []}]
    path.write_bytes(pack_glb(tree, binary))
    assert load_mesh(path).notes == []  # painted whole, the file itself is written back, rig and all
    assert load_mesh(path, unwrap="always").notes[0] == (
        "the file's skin (rig), morph targets, animations are left out of the outputs, which hold the static mesh: "
        "put the new texture on the original file's material to keep them")


def test_glb_keeps_what_the_file_stores(tmp_path: Path) -> None:
    path = tmp_path / "box.glb"
    textured_box().export(path)
    positions, stored_uvs, indices = read_glb_primitive(path)
    mesh = load_mesh(path)
    np.testing.assert_array_equal(mesh.positions[mesh.faces], positions[indices].astype(np.float64))
    # glTF stores v down; texgen's UVs have v up (OBJ/Blender convention)
    truth = stored_uvs.astype(np.float64)
    truth[:, 1] = 1.0 - truth[:, 1]
    np.testing.assert_allclose(mesh.uvs[mesh.uv_faces], truth[indices], rtol=0, atol=1e-7)
    assert mesh.texture.shape == (16, 16, 3)


def test_draco_compressed_glb_reads_its_geometry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Draco geometry decodes (with DracoPy) to the source's, within its quantization; without DracoPy,
    trimesh would read placeholder zeros: the file is refused by name instead."""
    import importlib.util

    import trimesh

    path = tmp_path / "draco.glb"
    path.write_bytes(trimesh.exchange.gltf.export_glb(trimesh.load(ASSETS / "vase.glb", process=False),
                                                      extension_draco=True))
    assert read_json(path)["extensionsRequired"] == ["KHR_draco_mesh_compression"]
    source, draco = load_mesh(ASSETS / "vase.glb"), load_mesh(path)
    assert len(draco.faces) == len(source.faces) and draco.texture.shape == source.texture.shape
    np.testing.assert_allclose(np.sort(draco.positions[draco.faces].reshape(-1, 3), axis=0),
                               np.sort(source.positions[source.faces].reshape(-1, 3), axis=0), atol=1e-4)
    np.testing.assert_allclose(np.sort(draco.corner_uvs().reshape(-1, 2), axis=0),
                               np.sort(source.corner_uvs().reshape(-1, 2), axis=0), atol=1e-4)
    assert draco.source_glb is not None  # written back whole, its Draco geometry as it is
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "DracoPy"
                        else find_spec(name, *args))
    with pytest.raises(MeshError, match=r"draco.glb: the geometry is Draco-compressed \(KHR_draco_mesh_compression\) "
                                        r"and DracoPy, which decodes it, is not installed: pip install DracoPy"):
        load_mesh(path)


def quantized_normals_box(path: Path):
    """A box GLB whose normals are normalized bytes (KHR_mesh_quantization); returns the box and the bytes."""
    import trimesh

    box = trimesh.creation.box()
    box.export(path)
    tree, binary = read_json(path), glb_binary(path.read_bytes())
    stored = np.zeros((len(box.vertices), 4), np.int8)  # padded to 4 bytes a vertex, as glTF requires
    stored[:, :3] = np.round(box.vertex_normals * 127)
    tree["bufferViews"].append({"buffer": 0, "byteOffset": len(binary), "byteLength": stored.nbytes, "byteStride": 4})
    tree["accessors"].append({"bufferView": len(tree["bufferViews"]) - 1, "componentType": 5120, "normalized": True,
                              "count": len(stored), "type": "VEC3"})
    tree["meshes"][0]["primitives"][0]["attributes"]["NORMAL"] = len(tree["accessors"]) - 1
    tree["buffers"][0]["byteLength"] = len(binary) + stored.nbytes
    tree["extensionsUsed"] = tree["extensionsRequired"] = ["KHR_mesh_quantization"]
    path.write_bytes(pack_glb(tree, binary + stored.tobytes()))
    return box, stored


def test_quantized_normals_are_dequantized_to_unit_length(tmp_path: Path) -> None:
    """KHR_mesh_quantization's normalized bytes (127 for 1.0), which trimesh reads unscaled, become unit normals."""
    box, stored = quantized_normals_box(tmp_path / "box.glb")
    mesh = load_mesh(tmp_path / "box.glb")
    np.testing.assert_allclose(mesh.normals[mesh.normal_faces], (stored[:, :3] / 127)[box.faces], atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(mesh.normals, axis=1), 1.0, atol=0.01)


def test_meshopt_compressed_glb_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "meshopt.glb"
    textured_box().export(path)
    tree = read_json(path)
    tree["extensionsUsed"] = tree["extensionsRequired"] = ["EXT_meshopt_compression"]
    path.write_bytes(pack_glb(tree, glb_binary(path.read_bytes())))
    with pytest.raises(MeshError, match=r"meshopt.glb: the geometry is compressed with EXT_meshopt_compression "
                                        r"\(as gltfpack -c writes it\), which texgen cannot decode yet"):
        load_mesh(path)


def write_ply(path: Path, encoding: str, vertex: dict[str, np.ndarray], faces, texcoord=None,
              comments: tuple[str, ...] = ()) -> Path:
    """A PLY of double vertex properties and faces (a list of corner lists, any lengths), with
    MeshLab's per-corner float ``texcoord`` list (2 per corner) when given, in ``ascii`` or
    ``binary_little_endian``."""
    columns = np.stack(list(vertex.values()), axis=1)
    faces = [list(face) for face in np.asarray(faces, dtype=object).tolist()] if isinstance(faces, np.ndarray) \
        else [list(face) for face in faces]
    texcoord = None if texcoord is None else [np.asarray(t, np.float32) for t in texcoord]
    header = ["ply", f"format {encoding} 1.0", *(f"comment {c}" for c in comments),
              f"element vertex {len(columns)}", *(f"property double {name}" for name in vertex),
              f"element face {len(faces)}", "property list uchar int vertex_indices"]
    if texcoord is not None:
        header.append("property list uchar float texcoord")
    header = "\n".join(header + ["end_header"]) + "\n"
    if encoding == "binary_little_endian":
        rows = []
        for index, face in enumerate(faces):
            rows.append(struct.pack(f"<B{len(face)}i", len(face), *face))
            if texcoord is not None:
                rows.append(struct.pack("<B", len(texcoord[index])) + texcoord[index].astype("<f4").tobytes())
        path.write_bytes(header.encode() + columns.astype("<f8").tobytes() + b"".join(rows))
        return path
    lines = [" ".join(repr(x) for x in row) for row in columns.tolist()]
    for index, face in enumerate(faces):
        lines.append(f"{len(face)} " + " ".join(map(str, face)))
        if texcoord is not None:  # repr() of a float32 as a float64 reads back as the same float32
            lines[-1] += f" {len(texcoord[index])} " + " ".join(repr(x) for x in texcoord[index].tolist())
    path.write_text(header + "\n".join(lines) + "\n")
    return path


# A quad with a UV seam along its diagonal and a third triangle in a UV island of its own
PLY_POSITIONS = np.array([[0, 0, 0], [1.5, 0, 0], [1.5, 1, 0.25], [0, 1, 0.25], [2.5, 0.5, 0.125]])
PLY_FACES = np.array([[0, 1, 2], [0, 2, 3], [1, 4, 2]])
PLY_TEXCOORD = np.array([[0.1, 0.1, 0.4, 0.1, 0.4, 0.4],
                         [0.1, 0.1, 0.4, 0.4, 0.1, 0.4],
                         [0.6, 0.6, 0.9, 0.7, 0.6, 0.9]], np.float32)


@pytest.mark.parametrize("encoding", ["ascii", "binary_little_endian"])
@pytest.mark.parametrize("names", [("s", "t"), ("u", "v"), ("texture_u", "texture_v")], ids="_".join)
def test_ply_per_vertex_uvs(tmp_path: Path, encoding: str, names: tuple[str, str]) -> None:
    uv = np.random.default_rng(6).uniform(0.05, 0.95, (len(PLY_POSITIONS), 2))
    vertex = dict(zip("xyz", PLY_POSITIONS.T)) | dict(zip(names, uv.T))
    mesh = load_mesh(write_ply(tmp_path / "vertex.ply", encoding, vertex, PLY_FACES))
    np.testing.assert_array_equal(mesh.positions, PLY_POSITIONS)
    np.testing.assert_array_equal(mesh.faces, PLY_FACES)
    np.testing.assert_array_equal(mesh.uvs[mesh.uv_faces], uv[PLY_FACES])
    assert mesh.notes == []


@pytest.mark.parametrize("encoding", ["ascii", "binary_little_endian"])
def test_ply_per_corner_texcoords_keep_the_file_topology(tmp_path: Path, encoding: str) -> None:
    """trimesh splits a vertex for every UV it has; the file's vertices and faces come back, and
    corners with equal UVs share one UV index."""
    path = write_ply(tmp_path / "corner.ply", encoding, dict(zip("xyz", PLY_POSITIONS.T)), PLY_FACES, PLY_TEXCOORD)
    mesh = load_mesh(path)
    np.testing.assert_array_equal(mesh.positions, PLY_POSITIONS)
    np.testing.assert_array_equal(mesh.faces, PLY_FACES)
    np.testing.assert_array_equal(mesh.uvs[mesh.uv_faces], PLY_TEXCOORD.astype(np.float64).reshape(-1, 3, 2))
    assert len(mesh.uvs) == 7  # 4 on the quad, shared along the diagonal, and 3 on the island
    assert mesh.uv_faces[0, 0] == mesh.uv_faces[1, 0] and mesh.uv_faces[0, 2] == mesh.uv_faces[1, 1]
    assert len(np.unique(mesh.face_islands)) == 2  # vertices 1 and 2 carry a seam to the third face
    assert mesh.notes == []


# The L-shaped hexagon of L_SHAPE_OBJ and the quad beside it, as Blender writes n-gons into a PLY
PLY_POLYGONS = [[2, 3, 4, 5, 0, 1], [1, 6, 7, 2]]
L_POSITIONS = np.array([[0, 0, 0], [2, 0, 0], [2, 1, 0], [1, 1, 0], [1, 2, 0], [0, 2, 0], [3, 0, 0], [3, 1, 0]], float)


@pytest.mark.parametrize("encoding", ["ascii", "binary_little_endian"])
def test_ply_polygons_are_kept_and_concave_ones_cut_inside(tmp_path: Path, encoding: str) -> None:
    """Faces of several sizes (which trimesh cannot read from a binary file) load as the file's
    polygons, triangulated inside themselves, and the OBJ export writes them back."""
    vertex = dict(zip("xyz", L_POSITIONS.T)) | dict(zip("st", (L_POSITIONS[:, :2] / 4).T))
    image = np.random.default_rng(8).integers(0, 256, (8, 8, 3), np.uint8)
    Image.fromarray(image).save(tmp_path / "l.png")
    mesh = load_mesh(write_ply(tmp_path / "l.ply", encoding, vertex, PLY_POLYGONS, comments=("TextureFile l.png",)))
    np.testing.assert_array_equal(mesh.texture, image)
    np.testing.assert_array_equal(mesh.positions, L_POSITIONS)
    assert mesh.polygons.tolist() == [6, 4] and len(mesh.faces) == 6
    corners = mesh.positions[mesh.faces]
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])[:, 2]
    assert (cross > 0).all() and cross[:4].sum() / 2 == pytest.approx(3.0)
    np.testing.assert_array_equal(mesh.uvs[mesh.uv_faces], mesh.positions[mesh.faces][:, :, :2] / 4)
    faces = [line for line in obj_bytes(mesh, "l.mtl", "l").decode().splitlines() if line.startswith("f ")]
    assert faces == ["f 3/3 4/4 5/5 6/6 1/1 2/2", "f 2/2 7/7 8/8 3/3"]


def test_ply_quads_with_per_corner_texcoords(tmp_path: Path) -> None:
    texcoord = [L_POSITIONS[[1, 6, 7, 2], :2].reshape(-1) / 4, L_POSITIONS[[0, 1, 2, 3], :2].reshape(-1) / 4]
    mesh = load_mesh(write_ply(tmp_path / "quads.ply", "binary_little_endian", dict(zip("xyz", L_POSITIONS.T)),
                               [[1, 6, 7, 2], [0, 1, 2, 3]], texcoord))
    assert mesh.polygons.tolist() == [4, 4] and mesh.faces.tolist() == [[1, 6, 7], [1, 7, 2], [0, 1, 2], [0, 2, 3]]
    assert len(mesh.uvs) == 6  # the corners at vertices 1 and 2 share their UVs
    np.testing.assert_array_equal(mesh.uvs[mesh.uv_faces], mesh.positions[mesh.faces][:, :, :2] / 4)


def test_obj_numbers_are_read_whatever_follows_or_separates_them(tmp_path: Path) -> None:
    """Tabs, runs of blanks, CRLF line ends, vertex colours (MeshLab, ZBrush), a w after the UV."""
    text = ("v 0 0 0 0.2 0.4 0.6\r\nv 1  0\t0 1 1 1\r\nv 0 1 0 0 0 0\r\n"
            "vt 0 0 0\r\nvt 1 0 1\r\nvt 0 1 0\r\nvn 0 0 1\r\nf 1/1/1 2/2/1 3/3/1\r\n")
    mesh = load_mesh(write(tmp_path / "extras.obj", text))
    np.testing.assert_array_equal(mesh.positions, [[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(mesh.uvs, [[0, 0], [1, 0], [0, 1]])
    np.testing.assert_array_equal(mesh.normals, [[0, 0, 1]])


@pytest.mark.parametrize("relative", [False, True])
def test_obj_keywords_followed_by_a_tab_keep_their_uvs(tmp_path: Path, relative: bool) -> None:
    """trimesh drops every UV of a file with "vt<TAB>" or "f<TAB>" lines, and fails on "v<TAB>" ones."""
    faces = "f\t-3/-3 -2/-2 -1/-1\n" if relative else "f\t1/1 2/2 3/3\n"
    mesh = load_mesh(write(tmp_path / "tabs.obj", "v\t0 0 0\nv 1 0 0\nv\t0 1 0\nvt\t0 0\nvt 1 0\nvt\t0 1\n" + faces))
    np.testing.assert_array_equal(mesh.positions, [[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(mesh.uvs[mesh.uv_faces], [[[0, 0], [1, 0], [0, 1]]])
    assert not any("unwrap" in note for note in mesh.notes)


def test_obj_vt_lines_with_u_alone_read_v_as_zero(tmp_path: Path) -> None:
    mesh = load_mesh(write(tmp_path / "u.obj", TRIANGLE + "vt 0.5\nvt 1 0\nvt 0 1\nf 1/1 2/2 3/3\n"))
    np.testing.assert_array_equal(mesh.uvs, [[0.5, 0.0], [1.0, 0.0], [0.0, 1.0]])


def test_binary_ply_of_polygons_with_a_face_out_of_range(tmp_path: Path) -> None:
    path = write_ply(tmp_path / "far.ply", "binary_little_endian", dict(zip("xyz", L_POSITIONS.T)),
                     [[2, 3, 4, 5, 0, 1], [1, 6, 99]])
    with pytest.raises(MeshError, match="far.ply: face 1 refers to vertex 99, but the file has only 8 vertices"):
        load_mesh(path)


def test_ply_faces_of_fewer_than_three_corners_are_refused(tmp_path: Path) -> None:
    path = write_ply(tmp_path / "line.ply", "ascii", dict(zip("xyz", L_POSITIONS.T)), [[0, 1, 2, 3], [4, 5]])
    with pytest.raises(MeshError, match="line: face 1 of the PLY has 2 corners; a face needs 3 or more"):
        load_mesh(path)


def test_stl_and_off_load_without_uvs(tmp_path: Path) -> None:
    box = trimesh.creation.box(extents=(1.0, 2.0, 3.0))
    for suffix in (".stl", ".off"):
        path = tmp_path / f"box{suffix}"
        box.export(path)
        mesh = load_mesh(path, unwrap="never")
        assert not mesh.has_uvs and mesh.texture is None and len(mesh.faces) == 12
        # STL stores float32 triangle corners; OFF stores the vertices as text
        np.testing.assert_allclose(mesh.positions[mesh.faces], box.vertices[box.faces], rtol=0, atol=1e-6)


def test_uvs_without_an_image_give_no_texture(tmp_path: Path) -> None:
    """trimesh puts a 2 x 2 grey placeholder on materials without an image; it is not a texture."""
    box = trimesh.creation.box()
    bare = trimesh.Trimesh(box.vertices, box.faces, process=False,
                           visual=trimesh.visual.TextureVisuals(uv=np.random.default_rng(0).uniform(0, 1, (8, 2))))
    for suffix in (".obj", ".glb", ".ply"):
        bare.export(tmp_path / f"bare{suffix}")
        mesh = load_mesh(tmp_path / f"bare{suffix}")
        assert mesh.has_uvs and mesh.texture is None, suffix


# ---------------------------------------------------------------------- unwrap


def test_unwrap_modes(tmp_path: Path) -> None:
    pytest.importorskip("xatlas")
    path = tmp_path / "sphere.ply"
    trimesh.creation.icosphere(subdivisions=2).export(path)
    bare = load_mesh(path, unwrap="never")
    assert not bare.has_uvs and bare.notes == []

    auto = load_mesh(path)
    assert auto.notes == ["the mesh had no UVs; unwrapped with xatlas"]
    corners = auto.uvs[auto.uv_faces]
    assert corners.min() >= 0 and corners.max() <= 1
    np.testing.assert_array_equal(auto.positions, bare.positions)  # unwrapping adds UVs, never vertices
    np.testing.assert_array_equal(auto.faces, bare.faces)
    assert len(np.unique(auto.face_islands)) > 1

    textured = tmp_path / "box.obj"
    textured_box().export(textured)
    kept = load_mesh(textured, unwrap="auto")
    assert kept.notes == [] and kept.texture is not None
    replaced = load_mesh(textured, unwrap="always")
    assert replaced.notes == ["UVs replaced by a new xatlas unwrap (--unwrap always)"]
    assert replaced.texture is None  # the old texture does not fit the new layout
    assert not np.array_equal(replaced.uvs[replaced.uv_faces], kept.uvs[kept.uv_faces])
    with pytest.raises(MeshError, match="unwrap must be auto, always or never, got 'sometimes'"):
        load_mesh(textured, unwrap="sometimes")


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize("name, text, message", [
    ("nan.obj", "v 0 0 0\nv nan 0 0\nv 0 1 0\nf 1 2 3\n",
     r"nan: 1 vertices have NaN or infinite coordinates \(first: vertex 1\)"),
    ("inf.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n0 inf 0\n3 0 1 2\n",
     r"inf: 1 vertices have NaN or infinite coordinates \(first: vertex 2\)"),
    ("range.obj", TRIANGLE + "f 1 2 4\n", "range.obj: line 4: a face refers to v 4, but the file has only 3 v lines"),
    # trimesh drops every UV of a file with one bad vt index; the mesh was then unwrapped anew
    ("vt_range.obj", TRIANGLE + "vt 0 0\nvt 1 0\nvt 0 1\nf 1/1 2/2 3/3\nf 1/9 2/10 3/11\n",
     "vt_range.obj: line 8: a face refers to vt 9, but the file has only 3 vt lines"),
    ("vt_zero.obj", TRIANGLE + "vt 0 0\nvt 1 0\nvt 0 1\nf 1/0 2/2 3/3\n",
     "vt_zero.obj: line 7: a face refers to vt 0, but OBJ indices start at 1"),
    ("vt_back.obj", TRIANGLE + "vt 0 0\nf -1/-1 -2/-2 -3/-3\nvt 1 0\nvt 0 1\n",
     "vt_back.obj: line 5: a face refers to vt -2, but the face has only 1 vt line above it"),
    ("v_back.obj", "v 0 0 0\nv 1 0 0\nf -1 -2 -3\nv 0 1 0\n",
     "v_back.obj: line 3: a face refers to v -3, but the face has only 2 v lines above it"),
    ("letters.obj", TRIANGLE + "f 1 2 3\r\nf 1 2 x\r\n", "letters.obj: line 5: cannot read the face 'f 1 2 x'"),
    ("slashes.obj", TRIANGLE + "f 1/1/1/1 2 3\n", "slashes.obj: line 4: cannot read the face 'f 1/1/1/1 2 3'"),
    ("short_vn.obj", TRIANGLE + "vn 0 1\nf 1//1 2//1 3//1\n",
     "short_vn.obj: 1 of the file's 1 vn lines have fewer than 3"),
    ("bad_vt.obj", TRIANGLE + "vt 0 x\nvt 1 0\nvt 0 1\nf 1/1 2/2 3/3\n",
     "bad_vt.obj: a vt line holds something that is not"),
    ("two.obj", TRIANGLE + "f 1 2 3\nf 1 2\n",
     r"two.obj: line 5: cannot read the face 'f 1 2' \(a face needs 3 corners or more; a line is an 'l' line\)"),
    ("range.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 5\n", "face index outside the range of its vertices"),
    ("points.obj", TRIANGLE, "points.obj: the file holds a PointCloud, not a triangle mesh"),
    ("nofaces.off", "OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n", r"nofaces: the mesh has no faces \(a point cloud or an empty"),
    ("udim.obj", TRIANGLE + "vt 0.5 0.5\nvt 1.5 0.5\nvt 0.5 0.9\nf 1/1 2/2 3/3\n",
     (r"udim: 1 face has UVs that cross a UV tile border \(the first: face 0, UVs \[\[0.5, 0.5\], \[1.5, 0.5\], "
      r"\[0.5, 0.9\]\]\). Tiled UDIM layouts are not supported yet: pack the UVs into the 0-1 square")),
    ("empty.obj", "", "empty.obj: the file contains no triangle mesh"),
])
def test_bad_files_raise_a_named_mesh_error(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(MeshError, match=message):
        load_mesh(write(tmp_path / name, text), unwrap="never")


# Faces 2 and 3 of 3 give no vt index, the second only at one corner
PARTIAL_UVS_OBJ = TRIANGLE + "v 1 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nf 1/1 2/2 3/3\nf 2/2 4 3/3\nf 1 2 4\n"


@pytest.mark.parametrize("unwrap", ["auto", "never"])
def test_obj_with_uvs_on_some_faces_only_is_refused(tmp_path: Path, unwrap: str) -> None:
    """trimesh drops every UV of such a file; it was unwrapped anew with the note "the mesh had no UVs"."""
    with pytest.raises(MeshError, match=(r"^partial.obj: faces without texture coordinates \(a vt index\): 2 of 3, the "
                                         r"first on line 9, so the file's UVs cannot be used; give every face a vt "
                                         r"index, or pass --unwrap always to ignore the file's UVs$")):
        load_mesh(write(tmp_path / "partial.obj", PARTIAL_UVS_OBJ), unwrap=unwrap)


def test_obj_with_uvs_on_some_faces_only_or_none_is_unwrapped(tmp_path: Path) -> None:
    pytest.importorskip("xatlas")
    path = write(tmp_path / "partial.obj", PARTIAL_UVS_OBJ)
    mesh = load_mesh(path, unwrap="always")
    assert mesh.notes == [("faces without texture coordinates (a vt index): 2 of 3, the first on line 9; the file's "
                           "UVs are ignored anyway (--unwrap always)"),
                          "UVs replaced by a new xatlas unwrap (--unwrap always)"]
    np.testing.assert_array_equal(mesh.positions, parse_obj_positions(path))
    np.testing.assert_array_equal(mesh.faces, [[0, 1, 2], [1, 3, 2], [0, 1, 3]])
    assert mesh.has_uvs

    # vt lines that no face uses: the mesh has no UVs, and says so
    unused = load_mesh(write(tmp_path / "unused.obj", PARTIAL_UVS_OBJ.replace("1/1 2/2 3/3", "1 2 3")
                             .replace("2/2 4 3/3", "2 4 3")))
    assert unused.notes == ["the mesh had no UVs; unwrapped with xatlas"]


@pytest.mark.parametrize("name, message", [
    ("noise.obj", "noise.obj: the file contains no triangle mesh"),
    ("noise.glb", r"noise.glb: cannot read the file as a mesh \(ValueError: incorrect header on GLB file\)"),
    ("noise.ply", r"noise.ply: cannot read the file as a mesh \(ValueError: Not a ply file!\)"),
    ("empty.glb", r"empty.glb: cannot read the file as a mesh \(IndexError"),
])
def test_files_that_are_not_meshes(tmp_path: Path, name: str, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"" if name.startswith("empty") else np.random.default_rng(5).bytes(4000))
    with pytest.raises(MeshError, match=message):
        load_mesh(path)


def test_missing_file_and_unsupported_suffix(tmp_path: Path) -> None:
    with pytest.raises(MeshError, match="mesh file not found: .*missing.obj"):
        load_mesh(tmp_path / "missing.obj")
    with pytest.raises(MeshError, match=r"model.fbx: unsupported mesh format '.fbx'; use one of .obj, .glb, "
                                        r".gltf, .ply, .stl, .off"):
        load_mesh(write(tmp_path / "model.fbx", "Kaydara FBX Binary"))


def test_degenerate_faces_are_kept_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "degenerate.obj", TRIANGLE + "v 2 2 2\nv 4 4 4\nf 1 2 3\nf 1 1 2\nf 1 4 5\nf 1 2 4\n")
    with caplog.at_level(logging.WARNING, logger="texgen.mesh"):
        mesh = load_mesh(path, unwrap="never")
    note = ("2 degenerate faces (repeated vertices or zero area) are skipped in rendering and baking and "
            "kept in the export")
    assert mesh.notes == [note] and note in caplog.text
    np.testing.assert_array_equal(mesh.faces, [[0, 1, 2], [0, 0, 1], [0, 3, 4], [0, 1, 3]])
    np.testing.assert_array_equal(mesh.face_ok, [True, False, False, True])  # repeated index; collinear


def test_a_merged_scene_warns_of_its_degenerate_faces_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    scene = trimesh.Scene()
    for name, faces in (("flat", [[0, 1, 2], [0, 0, 1]]), ("whole", [[0, 1, 2]])):
        part = trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [0, 1, 0]], faces, process=False)
        part.visual = trimesh.visual.TextureVisuals(uv=[[0.1, 0.1], [0.9, 0.1], [0.1, 0.9]])
        scene.add_geometry(part, node_name=name, geom_name=name)
    scene.export(tmp_path / "scene.glb")
    with caplog.at_level(logging.WARNING, logger="texgen.mesh"):
        mesh = load_mesh(tmp_path / "scene.glb")
    assert caplog.text.count("degenerate faces") == 1
    assert sum("1 degenerate faces" in note for note in mesh.notes) == 1


def test_uvs_in_one_other_tile_wrap_with_a_note(tmp_path: Path) -> None:
    mesh = load_mesh(write(tmp_path / "wrap.obj", TRIANGLE + "vt 1.2 0.5\nvt 1.5 0.5\nvt 1.2 0.9\nf 1/1 2/2 3/3\n"))
    assert mesh.notes == [("UVs outside [0, 1] wrap into the 0-1 square (glTF's repeat sampler), so several faces "
                           "share texels; the exported UVs are unchanged")]
    np.testing.assert_array_equal(mesh.uvs, [[1.2, 0.5], [1.5, 0.5], [1.2, 0.9]])  # stored as given
    np.testing.assert_allclose(mesh.corner_uvs()[0], [[0.2, 0.5], [0.5, 0.5], [0.2, 0.9]])


def test_multi_object_scene_merges_or_picks_one(tmp_path: Path) -> None:
    scene = trimesh.Scene()
    scene.add_geometry(textured_box(1), node_name="body", geom_name="body")
    scene.add_geometry(textured_box(2, offset=(4.0, 0.0, 0.0)), node_name="lid", geom_name="lid")
    path = tmp_path / "chest.glb"
    scene.export(path)

    merged = load_mesh(path)
    assert len(merged.positions) == 16 and len(merged.faces) == 24
    assert len(merged.notes) == 1 and merged.notes[0].startswith("merged 2 objects (")
    assert "their UV squares were tiled 2x2 so they do not overlap (use --object NAME to keep one)" in merged.notes[0]
    corners = merged.uvs[merged.uv_faces]
    tiles = {tuple(t) for t in np.floor(corners.mean(axis=1) * 2).astype(int)}
    assert len(tiles) == 2  # each object in its own quarter of the square

    lid = load_mesh(path, object_name="lid")
    assert len(lid.positions) == 8 and lid.notes == []
    np.testing.assert_allclose(lid.center, [4.0, 0.0, 0.0])  # the node's placement is applied
    with pytest.raises(MeshError, match=r"chest.glb: no object named 'wheel'; objects: (body, lid|lid, body)"):
        load_mesh(path, object_name="wheel")


def sample(texture: np.ndarray, uvs: np.ndarray) -> np.ndarray:
    """(N, 3) nearest texels of (H, W, 3) ``texture`` at (N, 2) UVs with v up."""
    height, width = texture.shape[:2]
    return texture[((1 - uvs[:, 1]) * height).astype(int), (uvs[:, 0] * width).astype(int)]


def test_merged_scene_tiles_the_objects_textures_like_their_uvs(tmp_path: Path) -> None:
    """Each object's texture, resized to a common tile, lands where its UVs were tiled; an object
    without a texture fills its tile with its base colour factor."""
    box = trimesh.creation.box()
    uv = np.random.default_rng(7).integers(2, 14, (len(box.vertices), 2)) / 16 + 1 / 32  # texel centres
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    gradient = np.zeros((16, 16, 3), np.uint8)
    gradient[..., 1], gradient[..., 2] = np.arange(16) * 16, np.arange(16)[:, None] * 16
    visuals = {"red": trimesh.visual.TextureVisuals(uv=uv, image=Image.fromarray(red)),
               "gradient": trimesh.visual.TextureVisuals(uv=uv, image=Image.fromarray(gradient)),
               "plain": trimesh.visual.TextureVisuals(uv=uv, material=trimesh.visual.material.PBRMaterial(
                   baseColorFactor=[0.5, 0.0, 1.0, 1.0]))}
    scene = trimesh.Scene()
    for index, (name, visual) in enumerate(visuals.items()):
        part = trimesh.Trimesh(box.vertices + [4.0 * index, 0, 0], box.faces, visual=visual, process=False)
        scene.add_geometry(part, node_name=name, geom_name=name)
    path = tmp_path / "three.glb"
    scene.export(path)

    merged = load_mesh(path)
    assert merged.notes[0].endswith("; the textures of red (8x8) were resampled to 16x16 to fill a tile each")
    # 2 x 2 tiles of the largest texture, 16 x 16, each in a gutter of one texel (at least 1/64 of the tile)
    assert merged.texture.shape == (36, 36, 3)
    part_of_face = np.round(merged.positions[merged.faces].mean(axis=1)[:, 0] / 4).astype(int)
    np.testing.assert_array_equal(np.bincount(part_of_face), [12, 12, 12])
    for index, name in enumerate(visuals):
        alone = load_mesh(path, object_name=name)
        corners = merged.uvs[merged.uv_faces[part_of_face == index]].reshape(-1, 2)
        if alone.texture is None:
            expected = np.broadcast_to([188, 0, 255], (len(corners), 3))  # linear 0.5 is sRGB 188
        else:
            expected = sample(alone.texture, alone.uvs[alone.uv_faces].reshape(-1, 2))
        np.testing.assert_array_equal(sample(merged.texture, corners), expected, err_msg=name)
    for row, column in [(0, 0), (0, 1), (1, 0)]:  # the gutter repeats the edge colours of the tile's inside
        tile = merged.texture[18 * row:18 * (row + 1), 18 * column:18 * (column + 1)]
        np.testing.assert_array_equal(tile, np.pad(tile[1:-1, 1:-1], ((1, 1), (1, 1), (0, 0)), mode="edge"))
    assert (merged.texture[18:, 18:] == 128).all()  # the fourth tile, of no object, is mid grey


# Two materials, a quad of the first and a triangle of the second, each face with its own normal;
# vertex 5 sits at vertex 2's position and stays apart
TWO_MATERIALS_OBJ = """\
mtllib two.mtl
v 0 0 0
v 1 0 0
v 1 1 0
v 0 1 0
v 1 0 0
v 2 0 0.5
vt 0.1 0.1
vt 0.9 0.1
vt 0.9 0.9
vt 0.1 0.9
vn 0 0 1
vn -0.4472136 0 0.8944272
usemtl stone
f 1/1/1 2/2/1 3/3/1 4/4/1
usemtl moss
f 5/1/2 6/2/2 3/3/2
"""


def test_obj_of_several_materials_keeps_the_files_lists(tmp_path: Path) -> None:
    """The file's vertices, polygons and normals in its own order, with each material's UVs in its tile."""
    images = {"stone": np.random.default_rng(1).integers(0, 256, (16, 16, 3), np.uint8),
              "moss": np.random.default_rng(2).integers(0, 256, (16, 16, 3), np.uint8)}
    for name, image in images.items():
        Image.fromarray(image).save(tmp_path / f"{name}.png")
    write(tmp_path / "two.mtl", "".join(f"newmtl {name}\nmap_Kd {name}.png\n" for name in images))
    mesh = load_mesh(write(tmp_path / "two.obj", TWO_MATERIALS_OBJ))
    np.testing.assert_array_equal(mesh.positions, parse_obj_positions(tmp_path / "two.obj"))
    assert mesh.polygons.tolist() == [4, 3] and mesh.faces.tolist() == [[0, 1, 2], [0, 2, 3], [4, 5, 2]]
    np.testing.assert_array_equal(mesh.normal_faces, [[0, 0, 0], [0, 0, 0], [1, 1, 1]])
    # each face reads the merged texture where its own material's texture was read
    file_uvs = np.array([[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]])[[[0, 1, 2], [0, 2, 3], [0, 1, 2]]]
    for faces, name in (([0, 1], "stone"), ([2], "moss")):
        np.testing.assert_array_equal(sample(mesh.texture, mesh.uvs[mesh.uv_faces[faces]].reshape(-1, 2)),
                                      sample(images[name], file_uvs[faces].reshape(-1, 2)), err_msg=name)
    faces = [line for line in obj_bytes(mesh, "two.mtl", "two").decode().splitlines() if line.startswith("f ")]
    assert [line.count("/") for line in faces] == [8, 6]  # the quad and the triangle, with v/vt/vn corners


def test_obj_of_several_materials_with_one_texture_keeps_its_uvs(tmp_path: Path) -> None:
    """Materials that differ in colour alone but map one texture: the file's UVs stay as they are."""
    image = np.random.default_rng(3).integers(0, 256, (16, 16, 3), np.uint8)
    Image.fromarray(image).save(tmp_path / "atlas.png")
    write(tmp_path / "two.mtl", "newmtl stone\nKd 1 1 1\nmap_Kd atlas.png\n"
                                "newmtl moss\nKd 0.5 1 0.5\nmap_Kd atlas.png\n")
    mesh = load_mesh(write(tmp_path / "two.obj", TWO_MATERIALS_OBJ))
    np.testing.assert_array_equal(mesh.texture, image)
    np.testing.assert_array_equal(mesh.uvs, [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]])
    assert mesh.polygons.tolist() == [4, 3] and mesh.uv_faces.tolist() == [[0, 1, 2], [0, 2, 3], [0, 1, 2]]
    np.testing.assert_array_equal(mesh.positions, parse_obj_positions(tmp_path / "two.obj"))


def test_merged_scene_reads_uvs_in_another_tile_as_a_repeating_sampler_does(tmp_path: Path) -> None:
    """Faces in UV tile [1, 2] were clamped onto the edge of their object's square when merging; shifted
    by whole tiles instead, as Mesh.corner_uvs does, they read the merged texture where a repeating sampler
    reads the object's own texture."""
    box = trimesh.creation.box()
    rng = np.random.default_rng(8)
    corners = box.vertices[box.faces].reshape(-1, 3)  # every face its own vertices, so faces may lie in any tile
    uv = rng.integers(1, 15, (len(corners), 2)) / 16 + 1 / 32  # texel centres of a 16 x 16 texture
    shifted = uv + np.stack([np.ones(len(corners)), np.repeat(np.arange(len(box.faces)) % 2, 3)], axis=1)
    scene = trimesh.Scene()
    for index, (name, part_uv) in enumerate([("shifted", shifted), ("plain", uv)]):
        visual = trimesh.visual.TextureVisuals(uv=part_uv, image=Image.fromarray(
            rng.integers(0, 256, (16, 16, 3), np.uint8)))
        part = trimesh.Trimesh(corners + [4.0 * index, 0, 0], np.arange(len(corners)).reshape(-1, 3),
                               visual=visual, process=False)
        scene.add_geometry(part, node_name=name, geom_name=name)
    path = tmp_path / "two.glb"
    scene.export(path)

    merged = load_mesh(path)
    assert ("; the UVs of shifted outside [0, 1] were wrapped into the 0-1 square first (glTF's repeat sampler), "
            "so several faces share texels") in merged.notes[0]
    part_of_face = np.round(merged.positions[merged.faces].mean(axis=1)[:, 0] / 4).astype(int)
    for index, name in enumerate(["shifted", "plain"]):
        alone = load_mesh(path, object_name=name)
        own = alone.uvs[alone.uv_faces]  # (F, 3, 2)
        assert (own[:, :, 0] > 1).all() == (name == "shifted")
        ours = merged.uvs[merged.uv_faces[part_of_face == index]]
        for at_merged, at_own in [(ours.reshape(-1, 2), own.reshape(-1, 2) % 1),  # corners
                                  (ours.mean(axis=1), own.mean(axis=1) % 1)]:  # centres: no face is distorted
            np.testing.assert_array_equal(sample(merged.texture, at_merged), sample(alone.texture, at_own),
                                          err_msg=name)


def test_merged_scene_refuses_an_object_whose_face_crosses_a_uv_tile_border(tmp_path: Path) -> None:
    """As for a single mesh: tiling the objects would otherwise clip the face into its object's square."""
    across = trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]], process=False,
                             visual=trimesh.visual.TextureVisuals(uv=[[0.5, 0.5], [1.5, 0.5], [0.5, 0.9]]))
    scene = trimesh.Scene()
    scene.add_geometry(across, node_name="decal", geom_name="decal")
    scene.add_geometry(textured_box(offset=(4.0, 0.0, 0.0)), node_name="box", geom_name="box")
    path = tmp_path / "kit.glb"
    scene.export(path)

    with pytest.raises(MeshError, match=r"^kit/decal: 1 face has UVs that cross a UV tile border \(the first: face 0"):
        load_mesh(path)
    assert len(load_mesh(path, object_name="box").faces) == 12


def test_merge_splits_a_uv_that_faces_in_two_tiles_share(tmp_path: Path) -> None:
    """A strip across u = 1: its UVs at u = 1 belong to faces of tile 0 and of tile 1, and are the right
    edge of the square for the first and the left edge for the second."""
    positions = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 1, 0], [1, 1, 0], [2, 1, 0]], np.float64)
    uv = np.array([[0.75, 0.25], [1, 0.25], [1.25, 0.25], [0.75, 0.75], [1, 0.75], [1.25, 0.75]])
    strip = trimesh.Trimesh(positions, [[0, 1, 4], [0, 4, 3], [1, 2, 5], [1, 5, 4]], process=False,
                            visual=trimesh.visual.TextureVisuals(uv=uv))
    scene = trimesh.Scene()
    scene.add_geometry(strip, node_name="strip", geom_name="strip")
    scene.add_geometry(textured_box(offset=(4.0, 0.0, 0.0)), node_name="box", geom_name="box")
    path = tmp_path / "strip.glb"
    scene.export(path)

    merged = load_mesh(path)
    in_strip = merged.positions[merged.faces].mean(axis=1)[:, 0] < 3
    assert len(np.unique(merged.uv_faces[in_strip])) == 8  # 6 UVs, the 2 at u = 1 in both tiles
    ours = load_mesh(path, object_name="strip").corner_uvs().reshape(-1, 2)
    np.testing.assert_array_equal(ours[:, 0].reshape(-1, 3), [[0.75, 1, 1], [0.75, 1, 0.75], [0, 0.25, 0.25],
                                                              [0, 0.25, 0]])
    got = merged.uvs[merged.uv_faces[in_strip]].reshape(-1, 2)
    scale = np.ptp(got, axis=0) / np.ptp(ours, axis=0)  # the strip's square, scaled into its tile
    np.testing.assert_allclose(got, (ours - ours.min(axis=0)) * scale + got.min(axis=0), rtol=0, atol=1e-12)


# ---------------------------------------------------------------------- arrays


def test_from_arrays_per_vertex_and_per_corner_uvs() -> None:
    positions = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float64)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    per_vertex = np.array([[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]])
    mesh = Mesh.from_arrays(positions, faces, per_vertex)
    np.testing.assert_array_equal(mesh.uv_faces, faces)
    assert mesh.faces.dtype == np.int64 and len(np.unique(mesh.face_islands)) == 1

    corners = per_vertex[faces].reshape(-1, 2)  # each corner its own row, as many tools send them
    mesh = Mesh.from_arrays(positions, faces, corners)
    np.testing.assert_array_equal(mesh.uvs[mesh.uv_faces], per_vertex[faces])
    assert len(np.unique(mesh.face_islands)) == 1  # equal UVs at a shared vertex join one island

    split = corners.copy()
    split[3:] = per_vertex[faces[1]] * 0.5  # the second triangle moved: a seam along the diagonal
    mesh = Mesh.from_arrays(positions, faces, split)
    assert len(np.unique(mesh.face_islands)) == 2

    with pytest.raises(MeshError, match=r"quad: uvs has 5 rows; expected one per vertex \(4\) or one per face "
                                        r"corner \(6\)"):
        Mesh.from_arrays(positions, faces, np.zeros((5, 2)), name="quad")


@pytest.mark.parametrize("change, message", [
    ({"faces": np.array([[0, 1, 4]])},
     r"tri: face indices out of range: face 0 refers to \[0, 1, 4\], but there are only 3 vertices"),
    ({"faces": np.array([[0, 1, -1]])}, r"face indices out of range: face 0 refers to \[0, 1, -1\]"),
    ({"faces": np.zeros((0, 3), int)}, r"tri: the mesh has no faces"),
    ({"faces": np.zeros(0, int)}, r"tri: the mesh has no faces"),
    ({"faces": np.array([[0.0, 1.0, 2.0]])}, "tri: face indices must be integers, got float64"),
    ({"positions": np.array([[0, 0, 0], [1, np.inf, 0], [0, 1, 0]])},
     r"tri: 1 vertices have NaN or infinite coordinates \(first: vertex 1\)"),
    ({"uvs": np.array([[0, 0], [1, 0], [0, 1]]), "uv_faces": np.array([[0, 1, 3]])},
     r"tri: UV face indices out of range: face 0 refers to \[0, 1, 3\], but there are only 3 UVs"),
    ({"uvs": np.array([[0, 0], [np.nan, 0], [0, 1]])}, "tri: UVs contain NaN or infinite values"),
    ({"uvs": np.array([[0.2, 0.2], [0.8, 0.2], [0.5, -0.4]])}, "tri: 1 face has UVs that cross a UV tile border"),
    ({"texture": np.zeros((4, 4, 2))}, r"tri: texture must be \(H, W, 3\) or \(H, W, 4\), got \(4, 4, 2\)"),
])
def test_from_arrays_rejects_bad_arrays(change: dict, message: str) -> None:
    arrays = {"positions": np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float64),
              "faces": np.array([[0, 1, 2]])}
    arrays.update(change)
    with pytest.raises(MeshError, match=message):
        Mesh.from_arrays(**arrays, name="tri")


def test_unit_frame_fits_the_unit_sphere_and_keeps_the_user_frame() -> None:
    rng = np.random.default_rng(2)
    positions = rng.normal(size=(50, 3)) * 300.0 + [1e4, -20.0, 5.0]
    faces = rng.integers(0, 50, size=(80, 3))
    mesh = Mesh.from_arrays(positions, faces)
    radius = np.linalg.norm(mesh.unit_positions[np.unique(faces)], axis=1)
    assert radius.max() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_array_equal(mesh.positions, positions)  # the user's frame is never changed
    np.testing.assert_allclose(mesh.unit_positions / mesh.scale + mesh.center, positions, rtol=1e-6)


def test_closed_outward_needs_closed_parts_wound_outwards() -> None:
    ball = trimesh.creation.icosphere(subdivisions=2)
    box = trimesh.creation.box(extents=(0.5, 0.5, 0.5))
    box.vertices += [3.0, 0.0, 0.0]

    def closed(*parts: tuple[np.ndarray, np.ndarray]) -> bool:
        positions, faces = [], []
        for vertices, triangles in parts:
            faces.append(triangles + sum(len(p) for p in positions))
            positions.append(vertices)
        return Mesh.from_arrays(np.concatenate(positions), np.concatenate(faces)).closed_outward

    assert closed((ball.vertices, ball.faces)) and closed((ball.vertices, ball.faces), (box.vertices, box.faces))
    # split along a UV seam (vertices repeated at one position) it is still closed: positions are welded
    split, vertex = ball.faces.copy(), ball.faces[0, 0]
    split[:40][split[:40] == vertex] = len(ball.vertices)
    assert closed((np.concatenate([ball.vertices, ball.vertices[vertex][None]]), split))
    assert not closed((ball.vertices, ball.faces[1:]))  # a hole
    flipped = ball.faces.copy()
    flipped[0] = flipped[0, ::-1]
    assert not closed((ball.vertices, flipped))  # one face wound the other way
    assert not closed((ball.vertices, ball.faces[:, ::-1]))  # inside out
    assert not closed((ball.vertices, ball.faces), (box.vertices, box.faces[:, ::-1]))  # one part inside out
    shell = trimesh.creation.icosphere(subdivisions=2, radius=0.5)
    assert not closed((ball.vertices, ball.faces), (shell.vertices, shell.faces[:, ::-1]))  # a hollow: an inner shell
    assert not closed((ball.vertices, np.concatenate([ball.faces, ball.faces[:1]])))  # an edge of three faces


def test_row_groups_number_rows_as_unique_does() -> None:
    rng = np.random.default_rng(3)
    rows = rng.integers(0, 4, size=(500, 3)).astype(np.float64) * 0.25
    rows[rows == 0] *= -1  # -0.0 is the same value as 0.0
    _, inverse = np.unique(np.abs(rows), axis=0, return_inverse=True)
    np.testing.assert_array_equal(row_groups(rows), inverse.reshape(-1))
    assert row_groups(np.zeros((0, 2))).shape == (0,)


def test_sorted_unique_is_unique() -> None:
    values = np.random.default_rng(4).integers(-50, 50, size=1000)
    np.testing.assert_array_equal(sorted_unique(values), np.unique(values))
    assert sorted_unique(np.zeros(0, np.int64)).shape == (0,)


def test_ply_vertex_normals_are_kept(tmp_path: Path) -> None:
    normals = np.random.default_rng(9).normal(size=(len(L_POSITIONS), 3))
    vertex = dict(zip("xyz", L_POSITIONS.T)) | dict(zip(("nx", "ny", "nz"), normals.T))
    mesh = load_mesh(write_ply(tmp_path / "n.ply", "binary_little_endian", vertex, PLY_POLYGONS), unwrap="never")
    np.testing.assert_array_equal(mesh.normals[mesh.normal_faces], normals[mesh.faces])


def test_bad_normals_are_refused() -> None:
    mesh = Mesh(np.eye(3), np.array([[0, 1, 2]]), normals=np.eye(3), normal_faces=np.array([[0, 1, 3]]))
    with pytest.raises(MeshError, match=r"mesh: normal face indices out of range: face 0 refers to \[0, 1, 3\], "
                                        "but there are only 3 normals"):
        mesh.validate()
    mesh.normal_faces, mesh.normals = np.array([[0, 1, 2]]), np.full((3, 3), np.nan)
    with pytest.raises(MeshError, match="normals contain NaN or infinite values"):
        mesh.validate()


def test_obj_maps_are_found_as_3d_tools_write_them(tmp_path: Path) -> None:
    """A map in a folder beside the mesh's, a map line with options, and a map that is not there."""
    from PIL import Image

    (tmp_path / "meshes").mkdir()
    (tmp_path / "textures").mkdir()
    obj = tmp_path / "meshes" / "crate.obj"
    obj.write_bytes((ASSETS / "crate.obj").read_bytes())
    (tmp_path / "textures" / "crate_albedo.png").write_bytes((ASSETS / "crate_albedo.png").read_bytes())
    expected = np.asarray(Image.open(ASSETS / "crate_albedo.png").convert("RGB"))
    mtl = (ASSETS / "crate.mtl").read_text()
    for line in ("map_Kd ../textures/crate_albedo.png", "map_Kd -s 1 1 1 -blendu on ../textures/crate_albedo.png"):
        (obj.parent / "crate.mtl").write_text(mtl.replace("map_Kd crate_albedo.png", line))
        mesh = load_mesh(obj)
        assert mesh.texture is not None and np.array_equal(mesh.texture, expected), line
        assert companion_files(obj) == ["crate.mtl", "../textures/crate_albedo.png"] and mesh.notes == []
    (obj.parent / "crate.mtl").write_text(mtl.replace("map_Kd crate_albedo.png", "map_Kd textures/gone.png"))
    mesh = load_mesh(obj)
    assert mesh.texture is None and companion_files(obj) == ["crate.mtl"]
    assert mesh.notes == ["the material names a base colour map that is not there (textures/gone.png); "
                          "the mesh is read without it"]
