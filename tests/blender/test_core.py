"""The add-on's pure core: conversions, requests, job board and worker thread (no bpy needed,
but imported from the enabled extension, exactly as Blender loads it)."""

from __future__ import annotations

import importlib
import time

import numpy as np
import pytest

from conftest import ADDON_MODULE


@pytest.fixture(scope="module")
def core(addon):
    class Core:
        meshdata = importlib.import_module(f"{ADDON_MODULE}.core.meshdata")
        request = importlib.import_module(f"{ADDON_MODULE}.core.request")
        jobs = importlib.import_module(f"{ADDON_MODULE}.core.jobs")
        worker = importlib.import_module(f"{ADDON_MODULE}.core.worker")
    return Core


def test_core_never_imports_bpy(addon):
    import ast
    from conftest import ADDON_DIR

    for path in (ADDON_DIR / "core").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] in ("bpy", "bmesh", "mathutils") for n in names), path


def test_axes_round_trip_and_convention(core):
    points = np.random.default_rng(0).normal(size=(50, 3))
    assert np.array_equal(core.meshdata.texgen_to_blender(core.meshdata.blender_to_texgen(points)), points)
    # Blender up (+Z) is texgen up (+Y); Blender front (-Y) is glTF front (+Z).
    assert core.meshdata.blender_to_texgen(np.array([[0, 0, 1.0]])).tolist() == [[0, 1, 0]]
    assert core.meshdata.blender_to_texgen(np.array([[0, -1.0, 0]])).tolist() == [[0, 0, 1]]


def test_weld_keeps_seams_and_merges_shared_corners(core):
    # Two triangles sharing edge (1, 2). Same UVs on the shared edge: no seam; different: seam.
    faces = np.array([[0, 1, 2], [2, 1, 3]])
    shared = np.array([[[0, 0], [1, 0], [0, 1]], [[0, 1], [1, 0], [1, 1]]], dtype=float)
    uvs, uv_faces = core.meshdata.weld_corner_uvs(faces, shared)
    assert len(uvs) == 4 and uv_faces[0, 1] == uv_faces[1, 1] and uv_faces[0, 2] == uv_faces[1, 0]
    split = shared.copy()
    split[1, 0] = [0.5, 0.5]
    uvs, uv_faces = core.meshdata.weld_corner_uvs(faces, split)
    assert len(uvs) == 5 and uv_faces[0, 2] != uv_faces[1, 0]
    assert np.array_equal(uvs[uv_faces], split)


def test_from_loop_triangles_applies_matrix_then_axes(core):
    matrix = np.eye(4)
    matrix[:3, 3] = [1, 2, 3]
    mesh = core.meshdata.from_loop_triangles("t", np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]]), [[0, 1, 2]],
                                             [[0, 1, 2]], [[0, 0], [1, 0], [0, 1]], matrix)
    assert mesh.positions.tolist() == [[1, 3, -2], [2, 3, -2], [1, 3, -3]]
    assert mesh.faces.dtype == np.int64 and mesh.uv_faces.tolist() == [[0, 1, 2]]
    assert mesh.normals is None and mesh.normal_faces is None


def test_from_loop_triangles_carries_corner_normals_through_the_matrix(core):
    matrix = np.diag([2.0, 1.0, 1.0, 1.0])  # a stretch along x: normals turn away from it
    loop_normals = np.array([[1, 1, 0], [0, 0, 1], [0, 0, 1], [0, 1, 0]]) / np.array([[2 ** 0.5], [1], [1], [1]])
    mesh = core.meshdata.from_loop_triangles("t", np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]]), [[0, 1, 2]],
                                             [[3, 0, 1]], np.zeros((4, 2)), matrix, loop_normals)
    assert mesh.normal_faces.tolist() == [[3, 0, 1]]  # one normal per loop, indexed by the triangle's loops
    expected = np.array([0.5, 0.0, -1.0]) / np.linalg.norm([0.5, 0.0, -1.0])  # inverse transpose, then Y-up
    assert np.allclose(mesh.normals[0], expected) and np.allclose(mesh.normals[1], [0, 1, 0])


def test_combine_then_split_atlas_round_trips(core):
    md = core.meshdata
    meshes = [md.MeshArrays(f"m{i}", np.zeros((3, 3)), np.array([[0, 1, 2]]), np.array([[0, 0], [1, 0], [0.5, 1]]),
                            np.array([[0, 1, 2]])) for i in range(3)]
    merged, layout = md.combine(meshes)
    assert layout.tiles == 2 and merged.faces.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert merged.uvs.min() >= 0 and merged.uvs.max() <= 1
    atlas = np.zeros((8, 8, 3), np.uint8)
    for index, (row, col) in enumerate([(0, 0), (0, 1), (1, 0)]):
        atlas[row * 4:(row + 1) * 4, col * 4:(col + 1) * 4] = 50 * (index + 1)
    parts = md.split_atlas(atlas, layout)
    assert [int(parts[f"m{i}"].mean()) for i in range(3)] == [50, 100, 150]
    # Mesh 0's UV square is the atlas's top-left: its UV (0, 1) maps to atlas UV (0, 1).
    assert np.allclose(merged.uvs[merged.uv_faces[0]][2], [0.25, 1.0])
    # starting images go the other way: joined into the atlas, each resampled to the tile size
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), rng.integers(0, 256, (2, 2, 4), dtype=np.uint8),
              rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)]
    joined = md.split_atlas(md.join_atlas(images, layout, 4), layout)
    assert np.array_equal(joined["m0"], images[0])
    assert np.array_equal(joined["m1"], np.repeat(np.repeat(images[1][:, :, :3], 2, axis=0), 2, axis=1))
    assert np.array_equal(joined["m2"], images[2][1::2, 1::2])


def test_combine_places_faces_in_other_uv_tiles_where_a_repeating_sampler_reads_them(core):
    md = core.meshdata
    # a strip across u = 1: one face in tile [0, 1], one in [1, 2], sharing the UVs on the edge u = 1
    uvs = np.array([[0.6, 0.2], [1.0, 0.2], [1.0, 0.8], [0.6, 0.8], [1.4, 0.2], [1.4, 0.8]])
    uv_faces = np.array([[0, 1, 2], [1, 4, 5]])
    strip = md.MeshArrays("strip", np.zeros((6, 3)), np.array([[0, 1, 2], [1, 4, 5]]), uvs, uv_faces)
    other = md.MeshArrays("other", np.zeros((3, 3)), np.array([[0, 1, 2]]), uvs[:3], uv_faces[:1])
    merged, layout = md.combine([strip, other])
    corners = merged.uvs[merged.uv_faces]
    # the strip owns the left half of the atlas; its second face reads u - 1 in [0, 0.4]
    assert np.allclose(corners[0], [[0.3, 0.6], [0.5, 0.6], [0.5, 0.9]])
    assert np.allclose(corners[1], [[0.0, 0.6], [0.2, 0.6], [0.2, 0.9]])
    assert (corners[:2, :, 0] <= 0.5).all() and (corners[2, :, 0] >= 0.5).all()


def test_combine_refuses_a_face_across_a_uv_tile_border(core):
    """Clipped into its square, a UDIM face would be painted squeezed: the mesh is named instead."""
    md = core.meshdata
    tile = md.MeshArrays("tile", np.zeros((3, 3)), np.array([[0, 1, 2]]), np.array([[0, 0], [1, 0], [0.5, 1]]),
                         np.array([[0, 1, 2]]))
    udim = md.MeshArrays("udim", np.zeros((3, 3)), np.array([[0, 1, 2]]),
                         np.array([[0.5, 0.5], [1.5, 0.5], [0.5, 0.9]]), np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match=r"^udim: 1 face has UVs that cross a UV tile border \(the first: face 0, "
                                         r"UVs \[\[0.5, 0.5\], \[1.5, 0.5\], \[0.5, 0.9\]\]\)\. Tiled UDIM layouts are "
                                         "not supported yet: pack its UVs into the 0-1 square"):
        md.combine([tile, udim])


def test_pixels_round_trip_flips_rows(core):
    texture = np.random.default_rng(1).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    pixels = core.meshdata.texture_to_pixels(texture)
    assert pixels.dtype == np.float32 and pixels.shape == (4 * 6 * 4,)
    assert np.allclose(pixels.reshape(4, 6, 4)[0, :, :3], texture[-1] / 255)  # Blender row 0 is the bottom
    assert np.array_equal(core.meshdata.pixels_to_texture(pixels, 6, 4), texture)


def test_server_config_rules(core):
    request = core.request
    assert request.ServerConfig().validate().is_loopback
    assert request.ServerConfig("tcp://localhost:9").is_loopback
    assert not request.ServerConfig("tcp://10.1.2.3:5555").is_loopback
    with pytest.raises(request.RequestError, match="tcp://HOST:PORT"):
        request.ServerConfig("http://127.0.0.1").validate()
    with pytest.raises(request.RequestError, match="needs CURVE keys"):
        request.ServerConfig("tcp://gpu-box:5555").validate()
    with pytest.raises(request.RequestError, match="together"):
        request.ServerConfig("tcp://gpu-box:5555", server_key="x" * 40).validate()
    request.ServerConfig("tcp://gpu-box:5555", "a" * 40, "b" * 40, "c" * 40).validate()


def test_options_use_texgen_names(core):
    options = core.request.TextureOptions(prompt="moss", views=0, seed=3)
    wire = options.to_wire()
    assert wire["views"] == "auto" and "model" not in wire and wire["seed"] == 3
    assert set(wire) <= {"prompt", "negative_prompt", "model", "seed", "views", "view_size", "texture_size",
                         "steps", "guidance", "init_strength"}
    md = core.meshdata
    mesh = md.MeshArrays("m", np.zeros((3, 3)), np.array([[0, 1, 2]]), np.zeros((3, 2)), np.array([[0, 1, 2]]))
    plain = core.request.JobRequest("texture", mesh, options, ("o",))
    started = core.request.JobRequest("texture", mesh, options, ("o",), np.zeros((4, 4, 3), np.uint8))
    assert "init_texture" not in plain.wire_options() and started.wire_options()["init_texture"] == "mesh"
    with pytest.raises(core.request.RequestError, match="carries the texture to repair"):
        core.request.JobRequest("inpaint_seams", mesh, core.request.SeamOptions(), ("o",))
    with pytest.raises(core.request.RequestError, match="Prompt is empty"):
        core.request.TextureOptions().validate()


def test_seam_options_use_seam_settings_names(core):
    seams = core.request.SeamOptions(band=4, threshold=0).to_wire()
    assert seams["threshold"] == "all" and seams["band"] == 4 and seams["method"] == "classical"
    assert "views" not in seams and "model" not in seams and "texture_size" not in seams
    assert set(seams) <= {"method", "band", "threshold", "hard_edge_deg", "prompt", "negative_prompt", "model", "seed",
                          "views", "view_size", "steps", "guidance"}
    assert seams["hard_edge_deg"] == 30.0
    assert core.request.SeamOptions(threshold=5.0, views=3).to_wire()["views"] == 3
    with pytest.raises(core.request.RequestError, match="classical or diffusion"):
        core.request.SeamOptions(method="magic").validate()
    with pytest.raises(core.request.RequestError, match="Hard edge angle"):
        core.request.SeamOptions(hard_edge_deg=0).validate()
    md = core.meshdata
    mesh = md.MeshArrays("m", np.zeros((3, 3)), np.array([[0, 1, 2]]), np.zeros((3, 2)), np.array([[0, 1, 2]]))
    with pytest.raises(core.request.RequestError, match="takes SeamOptions"):
        core.request.JobRequest("inpaint_seams", mesh, core.request.TextureOptions(), ("o",),
                                np.zeros((4, 4, 3), np.uint8))


def _request(core, targets=("Cube",)):
    md = core.meshdata
    mesh = md.MeshArrays("m", np.zeros((3, 3)), np.array([[0, 1, 2]]), np.zeros((3, 2)), np.array([[0, 1, 2]]))
    return core.request.JobRequest("texture", mesh, core.request.TextureOptions(prompt="x"), targets)


class ScriptedRemote:
    """A stand-in server connection that emits a scripted job, honouring the cancel flag."""

    def __init__(self, core, steps=3, delay=0.0, fail=None):
        self.core, self.steps, self.delay, self.fail, self.closed = core, steps, delay, fail, False

    def run(self, ticket, emit):
        JobEvent = self.core.jobs.JobEvent
        emit(JobEvent(ticket.id, "accepted", position=0))
        for step in range(self.steps):
            if ticket.cancel_event.is_set():
                emit(JobEvent(ticket.id, "cancelled", message="cancelled by the user"))
                return
            if self.fail is not None:
                raise self.fail
            time.sleep(self.delay)
            emit(JobEvent(ticket.id, "progress", fraction=(step + 1) / self.steps, message=f"step {step + 1}",
                          image=np.full((4, 4, 3), step, np.uint8)))
        emit(JobEvent(ticket.id, "result", image=np.zeros((8, 8, 3), np.uint8), report={"ok": True}))

    def close(self):
        self.closed = True


def _tickets(core, jobs):
    return [core.worker.Ticket(job.id, job.request, job.cancel_event) for job in jobs]


def _drain_until_finished(board, jobs, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not all(job.finished for job in jobs):
        assert time.monotonic() < deadline, [job.message for job in jobs]
        board.drain()
        time.sleep(0.01)


def test_worker_runs_jobs_in_order_and_board_applies_events(core):
    board = core.jobs.JobBoard()
    remote = ScriptedRemote(core)
    jobs = [board.add(_request(core, (name,))) for name in ("A", "B")]
    assert len({job.id for job in jobs}) == 2
    worker = core.worker.Worker(lambda: remote, board.events, _tickets(core, jobs))
    _drain_until_finished(board, jobs)
    worker.join()
    assert not worker.alive and remote.closed  # the worker ends after its tickets, closing the socket
    for job in jobs:
        assert job.state == core.jobs.JobState.DONE and job.fraction == 1.0 and job.texture.shape == (8, 8, 3)
        assert job.preview_serial == 3 and job.report == {"ok": True}


def test_worker_cancel_is_per_job(core):
    board = core.jobs.JobBoard()
    first, second = board.add(_request(core)), board.add(_request(core))
    worker = core.worker.Worker(lambda: ScriptedRemote(core, steps=50, delay=0.01), board.events,
                                _tickets(core, [first, second]))
    board.cancel(first.id)
    _drain_until_finished(board, [first, second])
    worker.join()
    assert first.state == core.jobs.JobState.CANCELLED
    assert second.state == core.jobs.JobState.DONE


def test_worker_survives_a_failing_job_and_unreachable_fails_the_rest_at_once(core):
    board = core.jobs.JobBoard()
    remotes = iter([ScriptedRemote(core, fail=RuntimeError("GPU on fire")), ScriptedRemote(core)])
    jobs = [board.add(_request(core)) for _ in range(2)]
    worker = core.worker.Worker(lambda: next(remotes), board.events, _tickets(core, jobs))
    _drain_until_finished(board, jobs)
    assert [j.state.value for j in jobs] == ["failed", "done"] and jobs[0].error == "GPU on fire"
    worker.join()

    calls = []

    def unreachable():
        calls.append(1)
        raise core.worker.ServerUnreachable("no texgen server answered at tcp://127.0.0.1:1")

    board = core.jobs.JobBoard()
    jobs = [board.add(_request(core)) for _ in range(3)]
    worker = core.worker.Worker(unreachable, board.events, _tickets(core, jobs))
    _drain_until_finished(board, jobs)
    worker.join()
    assert len(calls) == 1 and all("no texgen server answered" in job.error for job in jobs)


def test_board_ignores_events_after_a_job_finished(core):
    board = core.jobs.JobBoard()
    job = board.add(_request(core))
    JobEvent = core.jobs.JobEvent
    for event in (JobEvent(job.id, "cancelled"), JobEvent(job.id, "result", image=np.zeros((2, 2, 3), np.uint8))):
        board.events.put(event)
    assert board.drain() == [job]
    assert job.state == core.jobs.JobState.CANCELLED and job.texture is None
    assert board.active() == []
