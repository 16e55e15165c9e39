"""End to end: a real ``texgen serve`` subprocess (the project's venv) on loopback, and the add-on
in Blender talking to it through texgen's own (vendored) client.

The server runs the oracle generator, whose renders come from a reference copy of the same cube
carrying a known texture (exported by Blender's own OBJ exporter), so the texture that comes back
must equal that reference texel for texel: this checks axes, UVs and image orientation together.
It also serves a tiny random-weight diffusion model, for the cancel and real-diffusion paths.
"""

from __future__ import annotations

import importlib
import math
import subprocess
import time
from pathlib import Path
from typing import Iterator

import bpy
import numpy as np
import pytest

from conftest import ADDON_MODULE, ROOT, SERVER_PYTHON, _server_unavailable, free_port

SIZE = 64
CUBE = {"location": (0.5, 0.2, 0.1), "rotation": (0.2, 0.1, 0.3)}
FAST = {"views": 4, "view_size": 64, "texture_size": SIZE, "steps": 1}
SHARP = {"views": 6, "view_size": 128}  # enough views and pixels for the oracle to cover every texel


def reference_texture(size: int = SIZE) -> np.ndarray:
    """R follows u, G follows v (top row first), B constant: any flip or axis swap shows."""
    v, u = np.mgrid[0:size, 0:size]
    return np.stack([u * 255 // (size - 1), (size - 1 - v) * 255 // (size - 1), np.full_like(u, 128)],
                    axis=2).astype(np.uint8)


def make_reference(folder: Path) -> Path:
    """Export a textured copy of the test cube as OBJ + MTL + PNG, leaving the scene as it was."""
    bpy.ops.mesh.primitive_cube_add(**CUBE)
    cube = bpy.context.active_object
    image = bpy.data.images.new("oracle reference", SIZE, SIZE, alpha=False)
    rgba = np.ones((SIZE, SIZE, 4), np.float32)
    rgba[:, :, :3] = reference_texture()[::-1] / 255.0
    image.pixels.foreach_set(rgba.ravel())
    image.filepath_raw, image.file_format = str(folder / "reference.png"), "PNG"
    image.save()
    material = bpy.data.materials.new("oracle reference")
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True
    nodes = material.node_tree.nodes
    texture_node = nodes.new("ShaderNodeTexImage")
    texture_node.image = image
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    material.node_tree.links.new(texture_node.outputs["Color"], bsdf.inputs["Base Color"])
    cube.data.materials.append(material)
    for obj in bpy.context.view_layer.objects:
        obj.select_set(obj == cube)
    path = folder / "reference.obj"
    assert bpy.ops.wm.obj_export(filepath=str(path), export_selected_objects=True, path_mode="COPY",
                                 export_materials=True, export_normals=False) == {"FINISHED"}
    mesh = cube.data
    bpy.data.objects.remove(cube)
    bpy.data.meshes.remove(mesh)
    bpy.data.materials.remove(material)
    bpy.data.images.remove(image)
    return path


@pytest.fixture(scope="session")
def server(addon, tmp_path_factory) -> Iterator[str]:
    """Address of a texgen server serving the oracle (default model) and a tiny model."""
    reason = _server_unavailable()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("texgen-server")
    reference = make_reference(folder)
    tiny = folder / "tiny"
    made = subprocess.run([str(SERVER_PYTHON), "-m", "texgen", "models", "make-tiny", str(tiny), "--arch",
                           "sd15-controlnet"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    address = f"tcp://127.0.0.1:{free_port()}"
    log = (folder / "server.log").open("w")
    process = subprocess.Popen([str(SERVER_PYTHON), "-m", "texgen", "serve", "--bind", address, "--device", "cpu",
                                "--model", f"oracle:{reference}", "--model", str(tiny)],
                               cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    client = importlib.import_module(f"{ADDON_MODULE}.vendor.client")
    deadline = time.monotonic() + 240
    while not _workers_ready(client, address):
        assert process.poll() is None and time.monotonic() < deadline, \
            f"texgen serve did not come up:\n{(folder / 'server.log').read_text()[-3000:]}"
        time.sleep(0.5)
    yield address
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()


def _workers_ready(client, address: str) -> bool:
    """Whether every worker has loaded its models (hello answers before they have)."""
    try:
        with client.Client(address, timeout=1.0, retries=0) as connection:
            workers = connection.status()["workers"]
    except client.ClientError:
        return False
    return bool(workers) and all(worker["device"] for worker in workers)



@pytest.fixture
def connected(scene, server):
    """The scene fixture with the add-on's preferences pointing at the test server."""
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.address = server
    settings = scene.texgen
    settings.model = ""
    for key, value in FAST.items():
        setattr(settings, key, value)
    yield scene
    prefs.property_unset("address")


def uv_mask(obj, size: int = SIZE, margin: float = 0.02) -> np.ndarray:
    """(size, size) bool, top row first: texels well inside one of the object's UV triangles."""
    mesh = obj.data
    mesh.calc_loop_triangles()
    uv = mesh.uv_layers.active.data
    v, u = np.mgrid[0:size, 0:size]
    centers = np.stack([(u + 0.5) / size, 1 - (v + 0.5) / size], axis=2).reshape(-1, 2)
    mask = np.zeros(len(centers), bool)
    for triangle in mesh.loop_triangles:
        a, b, c = (np.array(uv[loop].uv) for loop in triangle.loops)
        weights = (centers - a) @ np.linalg.inv(np.array([b - a, c - a]).T).T
        mask |= (weights >= margin).all(axis=1) & (weights.sum(axis=1) <= 1 - margin)
    return mask.reshape(size, size)


def away_from_seams(mask: np.ndarray, texels: int = 3) -> np.ndarray:
    """``mask`` less the texels within ``texels`` of its border, where texgen blends colours across
    UV seams on purpose (the oracle's reference is discontinuous there, a painted texture is not)."""
    inner = mask.copy()
    for dy in range(-texels, texels + 1):
        for dx in range(-texels, texels + 1):
            inner &= np.roll(np.roll(mask, dy, axis=0), dx, axis=1)
    return inner


def test_connection_reports_models_and_device(connected, server):
    assert bpy.ops.texgen.test_connection() == {"FINISHED"}
    runtime = bpy.context.window_manager.texgen
    assert runtime.connection_ok and runtime.connection.startswith("OK: texgen") and "cpu" in runtime.connection
    assert len(runtime.models) == 2 and runtime.models[0].name.startswith("oracle:")


def test_texture_selected_through_the_scripting_api(connected, server, mods):
    import texgen_addon

    bpy.ops.mesh.primitive_cube_add(**CUBE)
    cube = bpy.context.active_object
    cube.data.uv_layers.active.name = "Unwrapped"
    vertices_before = [v.co[:] for v in cube.data.vertices]
    uvs_before = [d.uv[:] for d in cube.data.uv_layers["Unwrapped"].data]
    (image,) = texgen_addon.texture_objects([cube], "brick wall", server=server, **{**FAST, **SHARP})

    material = mods.materials.texgen_material(cube)
    assert material is not None and cube.material_slots[0].material == material
    assert mods.materials.material_image(material) == image and image.packed_file is not None
    uv_node = next(n for n in material.node_tree.nodes if n.type == "UVMAP")
    assert uv_node.uv_map == "Unwrapped" and list(cube.data.uv_layers.keys()) == ["Unwrapped"]
    assert [v.co[:] for v in cube.data.vertices] == vertices_before  # triangulated only for transport
    assert [d.uv[:] for d in cube.data.uv_layers["Unwrapped"].data] == uvs_before
    assert tuple(image.size) == (SIZE, SIZE)

    painted = mods.materials.read_texture(image).astype(float)
    reference = reference_texture().astype(float)
    inside = away_from_seams(uv_mask(cube, margin=0.0)) & uv_mask(cube)
    error = np.abs(painted - reference)[inside].max(axis=1)
    flipped = np.abs(painted[::-1] - reference)[inside].max(axis=1)
    assert inside.sum() > 0.12 * SIZE * SIZE  # the cube's six 16-texel squares, less 3 texels at each border
    # the oracle's own texture came back where it belongs, and the same check would catch a flip
    assert np.median(error) <= 2 and error.mean() < 4, (np.median(error), error.mean())
    assert np.median(flipped) > 30, np.median(flipped)


def test_modal_timer_steps_with_a_real_server(connected, mods):
    bpy.ops.mesh.primitive_cube_add(**CUBE)
    cube = bpy.context.active_object
    session = mods.operators.start_session(bpy.context, lambda: mods.operators.plan_selected(bpy.context))
    fractions, messages = [], set()
    deadline = time.monotonic() + 120
    while not session.on_timer(bpy.context):
        assert time.monotonic() < deadline
        (job,) = session.run.jobs
        fractions.append(job.fraction)
        messages.add(job.message)
        time.sleep(0.05)
    reports = []
    assert session.finish(bpy.context, lambda level, text: reports.append(text)) == {"FINISHED"}
    assert reports == [f"{cube.name}: done"] and fractions == sorted(fractions) and len(messages) > 1
    assert mods.materials.texgen_material(cube) is not None


def test_cancel_a_running_job_on_the_server(connected, mods):
    bpy.ops.mesh.primitive_cube_add(**CUBE)
    cube = bpy.context.active_object
    assert bpy.ops.texgen.test_connection() == {"FINISHED"}
    settings = connected.texgen
    settings.model = bpy.context.window_manager.texgen.models[1].name  # the tiny diffusion model
    settings.views, settings.steps = 8, 20
    before = (sorted(bpy.data.images.keys()), sorted(bpy.data.materials.keys()))
    session = mods.operators.start_session(bpy.context, lambda: mods.operators.plan_selected(bpy.context))
    (job,) = session.run.jobs
    deadline = time.monotonic() + 120
    while job.fraction == 0.0:  # wait until the server is really running it
        session.on_timer(bpy.context)
        assert time.monotonic() < deadline, job.message
        time.sleep(0.05)
    started = time.monotonic()
    assert bpy.ops.texgen.cancel() == {"FINISHED"}
    while not session.on_timer(bpy.context):
        assert time.monotonic() - started < 30, job.message
        time.sleep(0.05)
    reports = []
    assert session.finish(bpy.context, lambda level, text: reports.append((level, text))) == {"CANCELLED"}
    assert reports[0][0] == {"WARNING"} and "cancel" in reports[0][1]
    assert (sorted(bpy.data.images.keys()), sorted(bpy.data.materials.keys())) == before
    assert not cube.material_slots


def test_start_from_the_current_image_at_strength_zero_keeps_it(connected, server, mods):
    """The image the material shows goes to the server as the starting texture; at strength 0 the
    views change nothing, so it comes back (into a texgen copy of the material; the original stays)."""
    import texgen_addon

    bpy.ops.mesh.primitive_cube_add(**CUBE)
    cube = bpy.context.active_object
    start = mods.materials.apply_texture(cube, reference_texture(), cube.data.uv_layers.active.name, storage="PACK",
                                         keep_old_materials=True, transaction=mods.materials.Transaction())
    assert bpy.ops.texgen.test_connection() == {"FINISHED"}
    tiny = bpy.context.window_manager.texgen.models[1].name
    (image,) = texgen_addon.texture_objects([cube], "brick wall", server=server, model=tiny, views=4, view_size=256,
                                            texture_size=SIZE, steps=1, start_from_image=True, init_strength=0.0)
    assert image == start  # the texgen image is updated in place
    painted = mods.materials.read_texture(image).astype(float)
    inside = away_from_seams(uv_mask(cube, margin=0.0)) & uv_mask(cube)
    error = np.abs(painted - reference_texture().astype(float))[inside].max(axis=1)
    assert np.median(error) <= 2 and error.mean() < 4, (np.median(error), error.mean())

    bpy.ops.mesh.primitive_cube_add(**CUBE)
    other = bpy.context.active_object
    with pytest.raises(texgen_addon.TexgenAddonError, match=f"{other.name}: its material has no image on Base Color"):
        texgen_addon.texture_objects([other], "x", server=server, start_from_image=True)
    bpy.ops.mesh.primitive_cube_add(**CUBE)
    unmapped = bpy.context.active_object
    unmapped.data.uv_layers.remove(unmapped.data.uv_layers[0])
    with pytest.raises(texgen_addon.TexgenAddonError, match=f"{unmapped.name}: no UV map that an image to start"):
        texgen_addon.texture_objects([unmapped], "x", server=server, start_from_image=True, create_uvs=True)
    bpy.data.objects.remove(unmapped)
    # sent together, the two images travel side by side in the atlas and each comes back to its object
    other.location.x += 3
    flipped = np.ascontiguousarray(reference_texture()[::-1])
    mods.materials.apply_texture(other, flipped, other.data.uv_layers.active.name, storage="PACK",
                                 keep_old_materials=True, transaction=mods.materials.Transaction())
    images = texgen_addon.texture_objects([cube, other], "brick wall", server=server, model=tiny, views=4,
                                          view_size=256, texture_size=SIZE, steps=1, start_from_image=True,
                                          init_strength=0.0, together=True)
    for obj, expected, image in zip((cube, other), (reference_texture(), flipped), images, strict=True):
        inside = away_from_seams(uv_mask(obj, margin=0.0)) & uv_mask(obj)
        error = np.abs(mods.materials.read_texture(image).astype(float) - expected)[inside].max(axis=1)
        assert np.median(error) <= 2 and error.mean() < 6, (obj.name, np.median(error), error.mean())


def test_example_script_textures_and_saves(connected, server, mods, tmp_path):
    import runpy

    from conftest import ADDON_DIR

    bpy.ops.mesh.primitive_cube_add(**CUBE)
    cube = bpy.context.active_object
    example = runpy.run_path(str(ADDON_DIR / "examples" / "texture_selected.py"))
    saved = tmp_path / "textured.blend"
    assert example["main"](["--prompt", "moss", "--server", server, "--objects", cube.name, "--views", "2",
                            "--view-size", "64", "--texture-size", "32", "--save", str(saved)]) == 0
    assert saved.is_file() and mods.materials.texgen_material(cube) is not None


def seam_segments(obj) -> list[tuple[np.ndarray, np.ndarray]]:
    """UV segments of both sides of every UV seam (an edge whose two faces disagree on its UVs)."""
    mesh = obj.data
    uv = mesh.uv_layers.active.data
    sides: dict = {}
    for polygon in mesh.polygons:
        loops = list(polygon.loop_indices)
        for a, b in zip(loops, loops[1:] + loops[:1], strict=True):
            ends = {mesh.loops[a].vertex_index: tuple(uv[a].uv), mesh.loops[b].vertex_index: tuple(uv[b].uv)}
            sides.setdefault(frozenset(ends), []).append(ends)
    segments = []
    for key, found in sides.items():
        if len(found) == 2 and found[0] != found[1]:
            segments += [tuple(np.array(side[v]) for v in sorted(key)) for side in found]
    return segments


def distance_to_segments(size: int, segments) -> np.ndarray:
    """(size, size) distance in texels from each texel centre (top row first) to the nearest segment."""
    v, u = np.mgrid[0:size, 0:size]
    points = np.stack([(u + 0.5), (size - v - 0.5)], axis=2).reshape(-1, 2)  # in texel units, v up
    best = np.full(len(points), np.inf)
    for a, b in segments:
        a, b = a * size, b * size
        t = np.clip(((points - a) @ (b - a)) / max((b - a) @ (b - a), 1e-12), 0, 1)
        best = np.minimum(best, np.linalg.norm(points - (a + t[:, None] * (b - a)), axis=1))
    return best.reshape(size, size)


def test_inpaint_seams_changes_only_band_texels_and_undo_restores_them(connected, mods):
    size, band = 128, 4
    bpy.ops.mesh.primitive_cube_add(**CUBE)
    cube = bpy.context.active_object
    rng = np.random.default_rng(3)
    islands = rng.integers(0, 256, (4, 4, 3))  # a different colour per UV block: every seam jumps
    painted = np.kron(islands, np.ones((size // 4, size // 4, 1))).astype(np.int64)
    painted = np.clip(painted + rng.integers(-6, 7, painted.shape), 0, 255).astype(np.uint8)
    image = mods.materials.apply_texture(cube, painted, cube.data.uv_layers.active.name, storage="PACK",
                                        keep_old_materials=True, transaction=mods.materials.Transaction())
    name = image.name
    bpy.ops.ed.undo_push(message="textured")
    settings = connected.texgen
    settings.seam_method, settings.seam_band, settings.seam_threshold = "classical", band, 0.0
    assert bpy.ops.texgen.inpaint_seams() == {"FINISHED"}  # background mode: runs to the end
    # a cube's seams all lie on its 90 degree edges, where colours may change by design: left alone
    assert np.array_equal(mods.materials.read_texture(bpy.data.images[name]), painted)

    settings.seam_hard_edge = math.pi  # repair those too
    assert bpy.ops.texgen.inpaint_seams() == {"FINISHED"}
    repaired = mods.materials.read_texture(bpy.data.images[name])
    changed = (repaired != painted).any(axis=2)
    distance = distance_to_segments(size, seam_segments(cube))
    assert changed.sum() > 50 and (distance < band).sum() > 0
    assert distance[changed].max() <= band + 1.5, distance[changed].max()  # only the band moved
    assert np.array_equal(repaired[distance > band + 1.5], painted[distance > band + 1.5])

    bpy.ops.ed.undo()
    assert np.array_equal(mods.materials.read_texture(bpy.data.images[name]), painted)
    bpy.ops.ed.redo()
    assert np.array_equal(mods.materials.read_texture(bpy.data.images[name]), repaired)
