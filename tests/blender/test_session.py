"""The job operators' path, driven step by step as the modal timer drives it, with a scripted
server connection; and the failure paths with texgen's real client (server down, offline)."""

from __future__ import annotations

import importlib
import re
import time

import bpy
import msgpack
import numpy as np
import pytest

from conftest import ADDON_MODULE, free_port



def pattern(size: int) -> np.ndarray:
    """A texture whose every texel is distinct enough to check where it went."""
    y, x = np.mgrid[0:size, 0:size]
    return np.stack([x * 255 // max(1, size - 1), y * 255 // max(1, size - 1), np.full_like(x, 128)],
                    axis=2).astype(np.uint8)


class ScriptedRemote:
    """Answers each job like a server would: accepted, progress with previews, then the result."""

    def __init__(self, mods, steps=3, delay=0.0, fail_with=None, report=None):
        self.mods, self.steps, self.delay, self.fail_with, self.report = mods, steps, delay, fail_with, report or {}
        self.requests = []

    def __call__(self, config):
        return self

    def run(self, ticket, emit):
        JobEvent = self.mods.jobs.JobEvent
        self.requests.append(ticket.request)
        emit(JobEvent(ticket.id, "accepted", position=0))
        for step in range(self.steps):
            time.sleep(self.delay)
            if ticket.cancel_event.is_set():
                emit(JobEvent(ticket.id, "cancelled", message="cancelled by the user"))
                return
            emit(JobEvent(ticket.id, "progress", fraction=(step + 1) / (self.steps + 1), message=f"step {step + 1}",
                          image=np.full((8, 8, 3), 40 * step, np.uint8)))
        if self.fail_with:
            emit(JobEvent(ticket.id, "failed", message=self.fail_with))
            return
        size = ticket.request.options.texture_size
        emit(JobEvent(ticket.id, "result", fraction=1.0, image=pattern(size), report=self.report))

    def close(self):
        pass


def drive(session, timeout=20.0):
    """Call the timer step as the modal operator's TIMER events do, until it says done."""
    ticks = 0
    deadline = time.monotonic() + timeout
    while not session.on_timer(bpy.context):
        ticks += 1
        assert time.monotonic() < deadline, session.run.status
        time.sleep(0.01)
    return ticks


def reports_of(session):
    collected = []
    result = session.finish(bpy.context, lambda level, text: collected.append((next(iter(level)), text)))
    return result, collected


def _select(*objects):
    for obj in bpy.context.view_layer.objects:
        obj.select_set(obj in objects)
    bpy.context.view_layer.objects.active = objects[0]


def _snapshot():
    return (sorted(bpy.data.images.keys()), sorted(bpy.data.materials.keys()),
            {o.name: ([s.material for s in o.material_slots], o.data.uv_layers.keys())
             for o in bpy.data.objects if o.type == "MESH"})


def test_modal_steps_paint_each_selected_object(scene, mods):
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    bpy.ops.mesh.primitive_uv_sphere_add(location=(3, 0, 0), segments=8, ring_count=6)
    sphere = bpy.context.active_object
    _select(cube, sphere)
    remote = ScriptedRemote(mods, delay=0.02)
    op = mods.operators.TEXGEN_OT_texture_selected
    session = mods.operators.start_session(bpy.context, lambda: mods.operators.plan_selected(bpy.context),
                                           connect=remote)
    assert not op.poll(bpy.context)  # buttons grey out while jobs run
    assert drive(session) > 0
    preview = bpy.data.images[mods.runner.PREVIEW_IMAGE]  # the last step's preview, shown as it arrived
    assert np.array_equal(mods.materials.read_texture(preview), np.full((8, 8, 3), 80, np.uint8))
    assert preview.preview is not None
    result, reports = reports_of(session)
    assert result == {"FINISHED"} and [level for level, _ in reports] == ["INFO", "INFO"]
    assert op.poll(bpy.context) and not mods.runner.BOARD.jobs
    assert [r.targets for r in remote.requests] == [(cube.name,), (sphere.name,)]  # one job after the other
    for obj in (cube, sphere):
        image = mods.materials.material_image(mods.materials.texgen_material(obj))
        assert np.array_equal(mods.materials.read_texture(image), pattern(64))


def test_the_reports_notes_are_shown_before_done(scene, mods):
    """What texgen did to the input (from the report's mesh notes and a seam repair's own notes) reaches
    the user as INFO reports, which a script's API call does not treat as problems."""
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    _select(cube)
    remote = ScriptedRemote(mods, report={"mesh": {"notes": ["UVs outside [0, 1] wrap"]}, "notes": ["resized"]})
    session = mods.operators.start_session(bpy.context, lambda: mods.operators.plan_selected(bpy.context),
                                           connect=remote)
    drive(session)
    assert reports_of(session) == ({"FINISHED"}, [("INFO", f"{cube.name}: UVs outside [0, 1] wrap"),
                                                  ("INFO", f"{cube.name}: resized"), ("INFO", f"{cube.name}: done")])


def test_together_sends_one_scene_and_splits_the_atlas(scene, mods):
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    bpy.ops.mesh.primitive_cube_add(location=(3, 0, 0))
    other = bpy.context.active_object
    _select(cube, other)
    scene.texgen.together = True
    remote = ScriptedRemote(mods)
    session = mods.operators.start_session(bpy.context, lambda: mods.operators.plan_selected(bpy.context),
                                           connect=remote)
    drive(session)
    assert reports_of(session)[0] == {"FINISHED"}
    (request,) = remote.requests
    assert request.targets == (cube.name, other.name) and request.options.texture_size == 128
    assert len(request.mesh.faces) == 24
    atlas = pattern(128)
    for obj, tile in ((cube, atlas[:64, :64]), (other, atlas[:64, 64:])):
        image = mods.materials.material_image(mods.materials.texgen_material(obj))
        assert np.array_equal(mods.materials.read_texture(image), tile)


def test_escape_cancels_and_leaves_the_scene_unchanged(scene, mods):
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    cube.data.uv_layers.remove(cube.data.uv_layers[0])
    scene.texgen.missing_uvs = "SMART_PROJECT"
    _select(cube)
    before = _snapshot()
    session = mods.operators.start_session(bpy.context, lambda: mods.operators.plan_selected(bpy.context),
                                           connect=ScriptedRemote(mods, steps=200, delay=0.01))
    assert len(cube.data.uv_layers) == 1  # made by Smart UV Project for this job
    for _ in range(5):
        session.on_timer(bpy.context)
        time.sleep(0.01)
    session.on_escape()
    drive(session)
    result, reports = reports_of(session)
    assert result == {"CANCELLED"} and reports[0][0] == "WARNING" and "cancelled" in reports[0][1]
    assert _snapshot() == before


def test_cancel_button_cancels_running_jobs(scene, mods):
    bpy.ops.mesh.primitive_cube_add()
    _select(bpy.context.active_object)
    session = mods.operators.start_session(bpy.context, lambda: mods.operators.plan_selected(bpy.context),
                                           connect=ScriptedRemote(mods, steps=500, delay=0.01))
    assert mods.operators.TEXGEN_OT_cancel.poll(bpy.context)
    assert bpy.ops.texgen.cancel() == {"FINISHED"}
    drive(session)
    assert reports_of(session)[0] == {"CANCELLED"}


def test_failed_job_reports_and_changes_nothing(scene, mods):
    bpy.ops.mesh.primitive_cube_add()
    _select(bpy.context.active_object)
    before = _snapshot()
    session = mods.operators.start_session(bpy.context, lambda: mods.operators.plan_selected(bpy.context),
                                           connect=ScriptedRemote(mods, fail_with="out of GPU memory [out_of_memory]"))
    drive(session)
    result, reports = reports_of(session)
    assert result == {"CANCELLED"} and reports == [("ERROR", f"{bpy.context.active_object.name}: "
                                                               "out of GPU memory [out_of_memory]")]
    assert _snapshot() == before


def test_missing_uvs_are_refused_when_asking(scene, mods):
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    cube.data.uv_layers.remove(cube.data.uv_layers[0])
    _select(cube)
    with pytest.raises(RuntimeError, match="no UV map"):
        bpy.ops.texgen.texture_selected()
    assert len(cube.data.uv_layers) == 0


def test_server_down_gives_a_clear_report_and_changes_nothing(scene, mods):
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    cube.data.uv_layers.remove(cube.data.uv_layers[0])
    scene.texgen.missing_uvs = "SMART_PROJECT"
    _select(cube)
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.address, prefs.connect_timeout_s = f"tcp://127.0.0.1:{free_port()}", 0.5
    before = _snapshot()
    with pytest.raises(RuntimeError, match="no texgen server answered at tcp://127.0.0.1"):
        bpy.ops.texgen.texture_selected()  # background mode: the operator runs its steps in a loop
    assert _snapshot() == before
    with pytest.raises(RuntimeError, match="Not reachable"):
        bpy.ops.texgen.test_connection()
    assert "Not reachable" in bpy.context.window_manager.texgen.connection
    import texgen_addon

    with pytest.raises(texgen_addon.TexgenAddonError, match="start it with `texgen serve`"):
        texgen_addon.texture_objects([cube], "moss", create_uvs=True, texture_size=64, view_size=64)
    assert _snapshot() == before
    prefs.property_unset("address")
    prefs.property_unset("connect_timeout_s")


def test_online_access_off_blocks_remote_servers_and_says_why(scene, mods):
    import texgen_addon

    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    remote = texgen_addon.server_config("tcp://10.0.0.1:5555")
    keyed = type(remote)(remote.address, "a" * 40, "b" * 40, "c" * 40)
    assert not bpy.app.online_access
    with pytest.raises(texgen_addon.TexgenAddonError, match="Allow Online Access.*Preferences > System > Network"):
        texgen_addon.texture_objects([cube], "moss", server=keyed)
    with pytest.raises(texgen_addon.TexgenAddonError, match="Allow Online Access"):
        texgen_addon.test_connection(keyed)
    with pytest.raises(texgen_addon.TexgenAddonError, match="needs CURVE keys"):
        texgen_addon.texture_objects([cube], "moss", server="tcp://10.0.0.1:5555")
    assert not cube.material_slots


class FakeServer:
    """A ROUTER speaking texgen's protocol (with CURVE when given a secret key) that greets, accepts
    a job, sends one progress event, then answers with an error reply ("error") or vanishes without
    a word ("vanish"). As "old version" it greets in protocol version 99."""

    def __init__(self, behaviour: str, curve_secret: bytes = b"", allow_dir: str = ""):
        import threading

        import zmq
        from zmq.auth.thread import ThreadAuthenticator

        self.protocol = importlib.import_module(f"{ADDON_MODULE}.vendor.protocol")
        self.behaviour, self.address = behaviour, f"tcp://127.0.0.1:{free_port()}"
        self.context = zmq.Context()
        self.authenticator = None
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.linger = 0
        if curve_secret:
            self.authenticator = ThreadAuthenticator(self.context)
            self.authenticator.start()
            self.authenticator.configure_curve(domain="*", location=allow_dir)
            self.socket.curve_server, self.socket.curve_secretkey = True, curve_secret
        self.socket.bind(self.address)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        Message = self.protocol.Message
        while not self.done.is_set():
            if not self.socket.poll(50):
                continue
            identity, *frames = self.socket.recv_multipart()
            message = self.protocol.decode(frames)
            reply = lambda m, to=identity: self.protocol.send(self.socket, m, prefix=[to])  # noqa: E731
            if message.type == "hello" and self.behaviour == "old version":
                header = {"version": 99, "type": "welcome", "job": "", "fields": {}, "frames": []}
                self.socket.send_multipart([identity, msgpack.packb(header)])
            elif message.type == "hello":
                reply(Message("welcome", fields={
                    "protocol": self.protocol.PROTOCOL_VERSION, "texgen": "test", "models": ["fake"],
                    "architectures": [], "device": "nowhere", "workers": 1,
                    "limits": self.protocol.Limits().to_dict(), "auth": "none", "heartbeat_s": 0.2,
                    "client_timeout_s": 5.0}))
            elif message.type in ("texture", "inpaint_seams"):
                reply(Message("accepted", message.job, {"position": 0}))
                reply(Message("progress", message.job, {"stage": "generate", "view": 0, "views": 2, "step": 1,
                                                        "steps": 2}))
                if self.behaviour == "error":
                    reply(Message("error", message.job, {"code": "out_of_memory",
                                                         "message": "the GPU ran out of memory: lower view_size"}))
                else:
                    self.socket.close(linger=0)  # the server is gone mid-job
                    return

    def close(self):
        self.done.set()
        self.thread.join()
        if self.authenticator is not None:
            self.authenticator.stop()
        self.context.destroy(linger=0)


def test_test_connection_names_each_problem(scene, mods, tmp_path):
    """Not reachable is tested above; here: wrong version, authentication refused, and ok over CURVE."""
    import zmq
    import zmq.auth

    import texgen_addon

    request = importlib.import_module(f"{ADDON_MODULE}.core.request")
    server_public, server_secret = zmq.curve_keypair()
    allowed_public, allowed_secret = zmq.curve_keypair()
    stranger_public, stranger_secret = zmq.curve_keypair()
    (tmp_path / "artist.key").write_text(f'metadata\ncurve\n    public-key = "{allowed_public.decode()}"\n')
    cases = [("old version", b"", allowed_public, allowed_secret, "version", "Wrong version"),
             ("greet", server_secret, stranger_public, stranger_secret, "auth", "Authentication refused"),
             ("greet", server_secret, allowed_public, allowed_secret, "ok", "OK: texgen test on nowhere")]
    for behaviour, secret, public, client_secret, status, words in cases:
        server = FakeServer(behaviour, curve_secret=secret, allow_dir=str(tmp_path))
        try:
            keys = (server_public.decode(), public.decode(), client_secret.decode()) if secret else ("", "", "")
            probe = texgen_addon.test_connection(request.ServerConfig(server.address, *keys, connect_timeout_s=2.0))
        finally:
            server.close()
        assert (probe.status, probe.message.split(":")[0]) == (status, words.split(":")[0]), probe.message
        assert probe.message.startswith(words)


@pytest.mark.parametrize("behaviour, words", [
    ("vanish", "stopped answering during job"),
    ("error", "the GPU ran out of memory: lower view_size [out_of_memory]"),
])
def test_server_failure_mid_job_is_reported_and_changes_nothing(scene, mods, behaviour, words):
    import texgen_addon

    request = importlib.import_module(f"{ADDON_MODULE}.core.request")
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    cube.data.uv_layers.remove(cube.data.uv_layers[0])
    before = _snapshot()
    server = FakeServer(behaviour)
    try:
        config = request.ServerConfig(server.address, connect_timeout_s=0.3, timeout_s=1.0)
        started = time.monotonic()
        with pytest.raises(texgen_addon.TexgenAddonError, match=re.escape(words)):
            texgen_addon.texture_objects([cube], "moss", server=config, create_uvs=True, texture_size=32)
        assert time.monotonic() - started < 20
    finally:
        server.close()
    assert _snapshot() == before


def test_loading_another_file_cancels_running_jobs(scene, mods):
    bpy.ops.mesh.primitive_cube_add()
    _select(bpy.context.active_object)
    session = mods.operators.start_session(bpy.context, lambda: mods.operators.plan_selected(bpy.context),
                                           connect=ScriptedRemote(mods, steps=500, delay=0.01))
    (handler,) = [h for h in bpy.app.handlers.load_pre if h.__module__ == mods.runner.__name__]
    handler(None)  # what Blender calls before it loads another file
    drive(session)
    assert reports_of(session)[0] == {"CANCELLED"}
    assert not session.run.worker.alive


def test_an_abandoned_session_frees_the_buttons(scene, mods):
    bpy.ops.mesh.primitive_cube_add()
    _select(bpy.context.active_object)
    session = mods.operators.start_session(bpy.context, lambda: mods.operators.plan_selected(bpy.context),
                                           connect=ScriptedRemote(mods, steps=500, delay=0.01))
    assert not mods.operators.TEXGEN_OT_texture_selected.poll(bpy.context)
    session.abandon(bpy.context)  # what the operator's cancel() does when Blender ends it
    assert mods.operators.TEXGEN_OT_texture_selected.poll(bpy.context)
    session.run.worker.join(10)
    assert not session.run.worker.alive
