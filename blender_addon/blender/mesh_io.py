"""Scene -> arrays: a mesh object as evaluated (modifiers applied), triangulated for transport,
with its active UV map. The UV map itself is never changed, so results land on the original map."""

from __future__ import annotations

from typing import Optional

import bpy
import numpy as np

from ..core.meshdata import MeshArrays, from_loop_triangles


class ExportError(ValueError):
    """An object cannot be sent; the message names it."""


def active_uv_name(obj: bpy.types.Object) -> Optional[str]:
    """Name of the object's active UV map, or None when it has none."""
    layer = obj.data.uv_layers.active if obj.type == "MESH" else None
    return layer.name if layer is not None else None


def export_object(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph, space: str = "WORLD",
                  normals: bool = False) -> MeshArrays:
    """Arrays of ``obj`` as evaluated in ``depsgraph``; ``space`` is "WORLD" or "LOCAL"; ``normals``: with
    its corner normals (which Inpaint Seams sends; a texture job has no use for them)."""
    if obj.type != "MESH":
        raise ExportError(f"{obj.name} is a {obj.type.lower()}, not a mesh")
    uv_name = active_uv_name(obj)
    if uv_name is None:
        raise ExportError(f"{obj.name} has no UV map")
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        layer = mesh.uv_layers.get(uv_name)
        if layer is None:
            raise ExportError(f"{obj.name}: its modifiers remove the UV map {uv_name!r}")
        mesh.calc_loop_triangles()
        if not len(mesh.loop_triangles):
            raise ExportError(f"{obj.name} has no faces")
        vertices = _read(mesh.vertices, "co", np.float32, 3)
        tri_vertices = _read(mesh.loop_triangles, "vertices", np.int32, 3)
        tri_loops = _read(mesh.loop_triangles, "loops", np.int32, 3)
        loop_uvs = _read(layer.data, "uv", np.float32, 2)
        # Blender splits corner normals at sharp edges and flat faces
        loop_normals = _read(mesh.corner_normals, "vector", np.float32, 3) if normals else None
        matrix = np.array(evaluated.matrix_world, dtype=np.float64) if space == "WORLD" else None
    finally:
        evaluated.to_mesh_clear()
    return from_loop_triangles(obj.name, vertices, tri_vertices, tri_loops, loop_uvs, matrix, loop_normals)


def _read(collection: bpy.types.bpy_prop_collection, attribute: str, dtype: type, width: int) -> np.ndarray:
    values = np.empty(len(collection) * width, dtype=dtype)
    collection.foreach_get(attribute, values)
    return values.reshape(-1, width)


def smart_uv_project(context: bpy.types.Context, obj: bpy.types.Object) -> str:
    """Give ``obj`` a new UV map made by Smart UV Project; return its name (to remove it on failure).

    Selection, the active object and the mode are restored afterwards.
    """
    view_layer = context.view_layer
    previous_active = view_layer.objects.active
    previous_selection = [o for o in view_layer.objects if o.select_get()]
    layer = obj.data.uv_layers.new(name="UVMap")
    if layer is None:
        raise ExportError(f"{obj.name}: Blender refused to add a UV map (at most 8 per mesh)")
    name = layer.name
    obj.data.uv_layers.active = layer
    try:
        for other in previous_selection:
            other.select_set(False)
        obj.select_set(True)
        view_layer.objects.active = obj
        with context.temp_override(active_object=obj, object=obj, selected_objects=[obj],
                                   selected_editable_objects=[obj]):
            bpy.ops.object.mode_set(mode="EDIT")
            bpy.ops.mesh.select_all(action="SELECT")
            bpy.ops.uv.smart_project()
            bpy.ops.object.mode_set(mode="OBJECT")
    except RuntimeError as exc:
        obj.data.uv_layers.remove(obj.data.uv_layers[name])
        raise ExportError(f"{obj.name}: Smart UV Project failed: {exc}") from None
    finally:
        obj.select_set(False)
        for other in previous_selection:
            other.select_set(True)
        view_layer.objects.active = previous_active
    return name
