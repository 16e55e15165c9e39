"""Scene -> arrays: vertices, triangles, UVs and seams match what Blender itself holds."""

from __future__ import annotations

import importlib

import bpy
import numpy as np
import pytest

from conftest import ADDON_MODULE


@pytest.fixture
def mesh_io(addon):
    return importlib.import_module(f"{ADDON_MODULE}.blender.mesh_io")


@pytest.fixture
def meshdata(addon):
    return importlib.import_module(f"{ADDON_MODULE}.core.meshdata")


def _evaluated(obj):
    """Blender's own view of the evaluated mesh: vertices (world), loop triangles and loop UVs."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    mesh.calc_loop_triangles()
    matrix = np.array(evaluated.matrix_world)
    vertices = np.array([(matrix @ np.append(v.co[:], 1.0))[:3] for v in mesh.vertices])
    triangles = [(tuple(t.vertices), tuple(t.loops), t.polygon_index) for t in mesh.loop_triangles]
    uv = mesh.uv_layers.active.data
    loop_uvs = np.array([uv[i].uv[:] for i in range(len(mesh.loops))])
    edges = {tuple(sorted(e.vertices)) for e in mesh.edges}
    seams = {tuple(sorted(e.vertices)) for e in mesh.edges if e.use_seam}
    # UV boundaries straight from the polygons: an edge whose loops' UVs differ on its two sides.
    sides: dict = {}
    for polygon in mesh.polygons:
        loops = list(polygon.loop_indices)
        for a, b in zip(loops, loops[1:] + loops[:1], strict=True):
            va, vb = mesh.loops[a].vertex_index, mesh.loops[b].vertex_index
            key = tuple(sorted((va, vb)))
            ua, ub = tuple(loop_uvs[a]), tuple(loop_uvs[b])
            sides.setdefault(key, []).append(frozenset({(va, ua), (vb, ub)}))
    boundaries = {key for key, found in sides.items() if len(found) == 2 and found[0] != found[1]}
    evaluated.to_mesh_clear()
    return vertices, triangles, loop_uvs, edges, seams, boundaries


def _exported_seams(arrays) -> set:
    corners: dict = {}
    for face, uv_face in zip(arrays.faces.tolist(), arrays.uv_faces.tolist(), strict=True):
        for i in range(3):
            a, b = face[i], face[(i + 1) % 3]
            ua, ub = uv_face[i], uv_face[(i + 1) % 3]
            corners.setdefault(tuple(sorted((a, b))), []).append(frozenset({(a, ua), (b, ub)}))
    return {key for key, found in corners.items() if len(found) == 2 and found[0] != found[1]}


def _check_round_trip(obj, arrays, meshdata, space="WORLD"):
    vertices, triangles, loop_uvs, edges, seams, boundaries = _evaluated(obj)
    if space == "LOCAL":
        inverse = np.linalg.inv(np.array(obj.matrix_world))
        vertices = vertices @ inverse[:3, :3].T + inverse[:3, 3]
    assert np.allclose(meshdata.texgen_to_blender(arrays.positions), vertices, atol=1e-5)
    assert arrays.faces.tolist() == [list(t[0]) for t in triangles]
    corner_uvs = arrays.uvs[arrays.uv_faces]
    expected = np.array([[loop_uvs[loop] for loop in t[1]] for t in triangles])
    assert np.allclose(corner_uvs, expected, atol=1e-6)
    exported = _exported_seams(arrays)
    assert exported == boundaries
    assert exported <= edges  # a triangulation diagonal is never a seam
    return exported, seams


def test_cube_round_trips_with_marked_seams(scene, mesh_io, meshdata):
    bpy.ops.mesh.primitive_cube_add(location=(1, 2, 3), rotation=(0.3, 0.2, 0.1))
    obj = bpy.context.active_object
    bpy.ops.object.mode_set(mode="EDIT")
    bpy.ops.mesh.select_all(action="SELECT")
    bpy.ops.uv.seams_from_islands()
    bpy.ops.object.mode_set(mode="OBJECT")
    arrays = mesh_io.export_object(obj, bpy.context.evaluated_depsgraph_get(), "WORLD", normals=True)
    assert arrays.name == obj.name and arrays.faces.shape == (12, 3) and len(arrays.positions) == 8
    exported, seams = _check_round_trip(obj, arrays, meshdata)
    assert seams and exported == seams  # UV seams on the wire are exactly Blender's marked seams
    assert len(arrays.uvs) == 14  # the default cube's 14 distinct UV corners
    corners = arrays.normals[arrays.normal_faces]  # (F, 3, 3): flat shading, so each face's own normal
    face_normals = np.cross(*(arrays.positions[arrays.faces[:, 1:]] - arrays.positions[arrays.faces[:, :1]])
                            .transpose(1, 0, 2))
    face_normals /= np.linalg.norm(face_normals, axis=1, keepdims=True)
    assert np.allclose(corners, face_normals[:, None], atol=1e-5)
    bpy.ops.object.shade_smooth()  # one normal per vertex: no hard edge left
    smooth = mesh_io.export_object(obj, bpy.context.evaluated_depsgraph_get(), "WORLD", normals=True)
    by_vertex = {}
    for vertex, normal in zip(smooth.faces.reshape(-1), smooth.normals[smooth.normal_faces].reshape(-1, 3)):
        assert np.allclose(by_vertex.setdefault(int(vertex), normal), normal, atol=1e-5)


def test_modifiers_ngons_and_local_space(scene, mesh_io, meshdata):
    bpy.ops.mesh.primitive_cylinder_add(vertices=12, location=(0, 0, 5), scale=(2, 1, 1))
    obj = bpy.context.active_object
    obj.modifiers.new("sub", "SUBSURF").levels = 1
    depsgraph = bpy.context.evaluated_depsgraph_get()
    world = mesh_io.export_object(obj, depsgraph, "WORLD")
    _check_round_trip(obj, world, meshdata)
    assert len(world.positions) > len(obj.data.vertices)  # the modifier was applied
    assert world.normals is None and world.normal_faces is None  # asked for by Inpaint Seams only
    local = mesh_io.export_object(obj, depsgraph, "LOCAL")
    _check_round_trip(obj, local, meshdata, space="LOCAL")
    assert not np.allclose(world.positions, local.positions)
    assert len(obj.data.uv_layers) == 1 and obj.data.uv_layers.active.name == "UVMap"  # original untouched


def test_non_mesh_and_missing_uvs_are_refused_by_name(scene, mesh_io):
    bpy.ops.mesh.primitive_plane_add()
    plane = bpy.context.active_object
    plane.data.uv_layers.remove(plane.data.uv_layers[0])
    depsgraph = bpy.context.evaluated_depsgraph_get()
    with pytest.raises(mesh_io.ExportError, match=f"{plane.name} has no UV map"):
        mesh_io.export_object(plane, depsgraph)
    bpy.ops.object.empty_add()
    with pytest.raises(mesh_io.ExportError, match="not a mesh"):
        mesh_io.export_object(bpy.context.active_object, depsgraph)


def test_smart_uv_project_adds_a_map_and_restores_selection(scene, mesh_io, meshdata):
    bpy.ops.mesh.primitive_uv_sphere_add(segments=8, ring_count=6)
    sphere = bpy.context.active_object
    sphere.data.uv_layers.remove(sphere.data.uv_layers[0])
    bpy.ops.mesh.primitive_cube_add(location=(3, 0, 0))
    cube = bpy.context.active_object
    name = mesh_io.smart_uv_project(bpy.context, sphere)
    assert sphere.data.uv_layers.active.name == name and sphere.mode == "OBJECT"
    assert bpy.context.view_layer.objects.active == cube and cube.select_get() and not sphere.select_get()
    arrays = mesh_io.export_object(sphere, bpy.context.evaluated_depsgraph_get())
    _check_round_trip(sphere, arrays, meshdata)
    assert arrays.uvs.min() > -1e-6 and arrays.uvs.max() < 1 + 1e-6 and np.ptp(arrays.uvs) > 0.5
