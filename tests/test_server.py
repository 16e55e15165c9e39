"""The server end to end on loopback: real sockets, a real worker process, the tiny model.

One server serves the whole module (a worker takes seconds to load). Tests that break things
(a killed worker) come last.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from typing import TYPE_CHECKING, Iterator

import msgpack
import numpy as np
import pytest
import zmq

from server_support import QUICK, SLOW, mesh_args, server_thread, uv_sphere, wait_ready
from texgen import protocol
from texgen.client import Accepted, Cancelled, Client, Failed, JobFailed, Progress, Result
from texgen.protocol import Limits, Message
from texgen.server import ServerConfig
from texgen.server.jobs import FairQueue, Job

if TYPE_CHECKING:
    from texgen.mesh import Mesh

LIMITS = Limits(max_message_bytes=4 << 20, max_faces=20_000, max_texture_size=256, max_views=6, max_queue=3)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir) -> str:
    return str(tiny_model_dir("sd15-controlnet"))


@pytest.fixture(scope="module")
def server(tiny: str) -> Iterator:
    config = ServerConfig(bind="tcp://127.0.0.1:*", workers=1, models=[tiny], device="cpu", limits=LIMITS,
                          heartbeat_s=0.25, client_timeout_s=2.0, shutdown_grace_s=5.0)
    with server_thread(config) as running:
        yield running


@contextlib.contextmanager
def raw_socket(address: str) -> Iterator[zmq.Socket]:
    """A bare DEALER, to send what the client would refuse to send."""
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(address)
    try:
        yield sock
    finally:
        sock.close()
        context.term()


def exchange(sock: zmq.Socket, frames: list, timeout: float = 5.0) -> Message:
    sock.send_multipart(frames)
    assert sock.poll(timeout * 1000), "the server did not answer"
    return protocol.decode(sock.recv_multipart())


def job_frames(options: dict, job: str = "job-x", mesh: dict | None = None) -> list[bytes]:
    arrays = mesh or uv_sphere()
    return [bytes(f) for f in protocol.encode(Message("texture", job, {"options": options}, arrays))]


def replace_header(original: list[bytes], **changes) -> list[bytes]:
    header = msgpack.unpackb(original[0])
    header.update(changes)
    return [msgpack.packb(header)] + original[1:]


def wait_idle(address: str, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    with Client(address) as client:
        while True:
            status = client.status()
            if not status["jobs"] and all(w["state"] == "idle" for w in status["workers"]):
                return status
            assert time.monotonic() < deadline, f"server still busy: {status}"
            time.sleep(0.1)


# ---------------------------------------------------------------------------- no job needed
def test_fair_queue_takes_turns_between_clients() -> None:
    queue = FairQueue()
    for client, name in (b"a", "a1"), (b"a", "a2"), (b"a", "a3"), (b"b", "b1"), (b"c", "c1"), (b"b", "b2"):
        queue.push(Job(name, client, Message("ping")))
    assert [j.id for j in queue.order()] == ["a1", "b1", "c1", "a2", "b2", "a3"]
    assert queue.position("c1") == 3 and queue.position("zz") == 0
    assert queue.remove("b1").id == "b1"
    assert [queue.pop().id for _ in range(len(queue))] == ["a1", "b2", "c1", "a2", "a3"]
    assert queue.pop() is None


def test_hello_reports_capabilities(server, tiny: str) -> None:
    with Client(server.address) as client:
        info = client.hello()
        assert client.ping() < 1.0
    assert info["protocol"] == protocol.PROTOCOL_VERSION
    assert info["models"] == [tiny] and info["device"] == "cpu" and info["workers"] == 1
    assert info["architectures"] == ["sd15-controlnet"]
    assert info["limits"] == LIMITS.to_dict() and info["auth"] == "none"


def test_malformed_messages_get_an_error_naming_the_field(server) -> None:
    good = job_frames({"prompt": "x"}, job="job-bad")
    table = msgpack.unpackb(good[0])["frames"]
    nan_mesh = uv_sphere()
    nan_mesh["positions"][3, 1] = np.nan
    nan_frames = [bytes(protocol.encode_header(Message("texture", "job-nan", {"options": {}}),
                                               [[n, a.dtype.name, list(a.shape), "raw"]
                                                for n, a in nan_mesh.items()]))]
    nan_frames += [a.tobytes() for a in nan_mesh.values()]
    bad_index = [list(e) for e in table]
    cases = [
        ([b"\xc1not msgpack"], "header", protocol.BAD_MESSAGE, ""),
        (replace_header(good, version=2), "version", protocol.VERSION_MISMATCH, ""),
        (good[:-1], "frames", protocol.BAD_MESSAGE, "job-bad"),
        (good[:2] + [good[2][:-1]] + good[3:], "faces", protocol.BAD_MESSAGE, "job-bad"),
        (replace_header(good, frames=[[*e[:1], "object", *e[2:]] if e[0] == "faces" else e for e in table]),
         "faces", protocol.BAD_MESSAGE, "job-bad"),
        (nan_frames, "positions", protocol.BAD_MESSAGE, "job-nan"),
        (replace_header(good, type="result"), "type", protocol.BAD_MESSAGE, "job-bad"),
        (replace_header(good, fields={"options": {"seed": [1, 2]}}), "options.seed", protocol.BAD_MESSAGE, "job-bad"),
        (replace_header(good, fields={}), "options", protocol.BAD_MESSAGE, "job-bad"),
    ]
    bad_index[1][2] = [len(uv_sphere()["faces"]) + 1, 3]
    cases.append((replace_header(good, frames=bad_index), "faces", protocol.BAD_MESSAGE, "job-bad"))
    out_of_range = uv_sphere()
    out_of_range["faces"][0, 0] = 10_000
    encoded = [protocol.encode_header(Message("texture", "job-oor", {"options": {}}),
                                      [[n, a.dtype.name, list(a.shape), "raw"] for n, a in out_of_range.items()])]
    cases.append((encoded + [a.tobytes() for a in out_of_range.values()], "faces", protocol.BAD_MESSAGE, "job-oor"))
    with raw_socket(server.address) as sock:
        for frames, field, code, job in cases:
            reply = exchange(sock, frames)
            assert reply.type == "error", reply
            assert (reply.fields["code"], reply.fields.get("field"), reply.job) == (code, field, job), reply.fields
        assert exchange(sock, [bytes(f) for f in protocol.encode(Message("ping"))]).type == "pong"


def test_limits_are_refused_with_clear_errors(server, tiny: str) -> None:
    big = uv_sphere(rings=100, segments=110)
    padded = uv_sphere()
    padded["positions"] = np.concatenate([padded["positions"], np.zeros((200_000, 3))])
    cases = [
        (job_frames(QUICK, mesh=big), protocol.TOO_MANY_FACES, "faces", "20000"),
        (job_frames({**QUICK, "texture_size": 512}), protocol.TEXTURE_TOO_LARGE, "options.texture_size", "256"),
        (job_frames({**QUICK, "views": 8}), protocol.TOO_MANY_VIEWS, "options.views", "6"),
        (job_frames(QUICK, mesh=padded), protocol.MESSAGE_TOO_LARGE, "message", "4.0 MiB"),
        (job_frames({**QUICK, "views": 0}), protocol.INVALID_OPTIONS, "options", "views"),
        (job_frames({**QUICK, "colour": "red"}), protocol.INVALID_OPTIONS, "options", "colour"),
        (job_frames({**QUICK, "model": "sdxl-big"}), protocol.UNKNOWN_MODEL, "options.model", tiny),
    ]
    with raw_socket(server.address) as sock:
        for frames, code, field, words in cases:
            reply = exchange(sock, frames)
            assert (reply.type, reply.fields["code"], reply.fields.get("field")) == ("error", code, field), reply
            assert words in reply.fields["message"]
    with Client(server.address) as client:  # the client refuses the same before sending
        with pytest.raises(JobFailed) as info:
            client.submit_texture(*mesh_args(big), options=QUICK)
        assert info.value.code == protocol.TOO_MANY_FACES and "decimate" in str(info.value)
    wait_idle(server.address)


def test_queue_positions_are_fair_and_the_queue_has_a_limit(server) -> None:
    mesh = mesh_args(uv_sphere())
    with Client(server.address) as alice, Client(server.address) as bob:
        running = alice.submit_texture(*mesh, options=SLOW)
        events = running.events()
        assert isinstance(next(events), Accepted)
        queued_a = [alice.submit_texture(*mesh, options=QUICK) for _ in range(2)]
        queued_b = bob.submit_texture(*mesh, options=QUICK)
        assert [h.position for h in queued_a] == [1, 2]
        assert queued_b.position == 2  # bob's first job goes before alice's second
        with pytest.raises(JobFailed) as info:
            bob.submit_texture(*mesh, options=QUICK)
        assert info.value.code == protocol.QUEUE_FULL and "--max-queue" in str(info.value)
        status = alice.status()
        states = {j["job"]: (j["state"], j["position"]) for j in status["jobs"]}
        assert states[running.job] == ("running", 0)
        assert [states[h.job] for h in (*queued_a, queued_b)] == [("queued", 1), ("queued", 3), ("queued", 2)]
        for handle in (*queued_a, running):
            handle.cancel()
        queued_b.cancel()
        ends = [list(h.events())[-1] for h in queued_a] + [list(queued_b.events())[-1]]
        assert all(isinstance(e, Cancelled) for e in ends), ends
        assert isinstance(list(events)[-1], Cancelled)
    wait_idle(server.address)


# ---------------------------------------------------------------------------- jobs
def run_locally(tiny: str, mesh: "Mesh") -> tuple:
    """The same job in this process: (TextureResult, its progress events)."""
    from texgen.diffusion import load_generator
    from texgen.pipeline import texture_mesh
    from texgen.settings import LoadOptions, TextureSettings

    events = []
    result = texture_mesh(mesh, settings=TextureSettings(**QUICK, model=tiny),
                          generator=load_generator(tiny, device="cpu"), progress=events.append,
                          load_options=LoadOptions())  # the server's, which its reports record
    return result, [(e.stage, e.view, e.views, e.step, e.steps) for e in events]


@pytest.fixture(scope="module")
def local_run(tiny: str) -> tuple:
    from texgen.mesh import Mesh

    return run_locally(tiny, Mesh.from_arrays(*mesh_args(uv_sphere()), name="sphere"))


def test_texture_job_matches_a_local_run_and_events_arrive_in_order(server, local_run) -> None:
    local, local_events = local_run
    events = []
    with Client(server.address) as client:
        result = client.texture(*mesh_args(uv_sphere()), options=QUICK, on_event=events.append)
    np.testing.assert_array_equal(result.texture, local.texture)
    np.testing.assert_array_equal(result.preview, local.preview)
    assert isinstance(events[0], Accepted) and isinstance(events[-1], Result)
    assert [(e.stage, e.view, e.views, e.step, e.steps) for e in events if isinstance(e, Progress)] == local_events
    assert set(result.report) == set(local.report)


def test_run_remote_writes_the_same_outputs_as_a_local_run(server, tiny: str, local_run, tmp_path) -> None:
    from texgen.client_jobs import run_remote
    from texgen.export import write_outputs
    from texgen.mesh import Mesh
    from texgen.settings import TextureSettings

    local, local_events = local_run
    events = []
    mesh = Mesh.from_arrays(*mesh_args(uv_sphere()), name="sphere")
    remote = run_remote(server.address, mesh, TextureSettings(**QUICK), progress=events.append)
    assert [(e.stage, e.view, e.views, e.step, e.steps) for e in events] == local_events
    written = {w: write_outputs(r, tmp_path / w, name="sphere") for w, r in (("local", local), ("remote", remote))}
    for kind, path in written["local"].items():
        if not path.name.endswith("_report.json"):  # the report holds timings
            assert path.read_bytes() == written["remote"][kind].read_bytes(), path.name

    bare = uv_sphere()  # no UVs: the server unwraps it and sends the layout back
    positions, faces = bare["positions"], bare["faces"]
    remote = run_remote(server.address, Mesh.from_arrays(positions, faces, name="bare"), {**QUICK, "model": tiny})
    local, _ = run_locally(tiny, Mesh.from_arrays(positions, faces, name="bare"))
    np.testing.assert_array_equal(remote.mesh.uv_faces, local.mesh.uv_faces)
    np.testing.assert_allclose(remote.mesh.uvs, local.mesh.uvs)
    np.testing.assert_array_equal(remote.texture, local.texture)


def test_a_job_started_from_a_texture_matches_a_local_run(server, tiny: str, tmp_path) -> None:
    """The client reads --init-texture's file and sends it as the job's texture frame."""
    from PIL import Image

    from texgen.client_jobs import run_remote
    from texgen.diffusion import load_generator
    from texgen.mesh import Mesh
    from texgen.pipeline import texture_mesh
    from texgen.settings import LoadOptions, TextureSettings

    start = np.random.default_rng(3).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    Image.fromarray(start).save(tmp_path / "start.png")
    settings = TextureSettings(**QUICK, model=tiny, init_texture=str(tmp_path / "start.png"), init_strength=0.3)
    mesh = Mesh.from_arrays(*mesh_args(uv_sphere()), name="sphere")
    remote = run_remote(server.address, mesh, settings)
    local = texture_mesh(Mesh.from_arrays(*mesh_args(uv_sphere()), name="sphere"), settings=settings,
                         generator=load_generator(tiny, device="cpu"), load_options=LoadOptions())
    np.testing.assert_array_equal(remote.texture, local.texture)
    plain = texture_mesh(Mesh.from_arrays(*mesh_args(uv_sphere()), name="sphere"), settings=TextureSettings(**QUICK),
                         generator=load_generator(tiny, device="cpu"))
    assert not np.array_equal(remote.texture, plain.texture)
    assert remote.report["settings"]["init_texture"] == "mesh" and remote.report["settings"]["init_strength"] == 0.3

    frame = {**uv_sphere(), "texture": start}
    cases = [(job_frames({**QUICK, "init_texture": "/etc/hosts.png"}), "'/etc/hosts.png' without"),
             (job_frames({**QUICK, "init_texture": "mesh"}), "'mesh' without"),
             (job_frames(QUICK, mesh=frame), "'' with")]
    with raw_socket(server.address) as sock:
        for frames, words in cases:
            reply = exchange(sock, frames)
            assert (reply.type, reply.fields["code"], reply.fields.get("field")) == (
                "error", protocol.INVALID_OPTIONS, "options.init_texture"), reply
            assert words in reply.fields["message"] and "texture frame" in reply.fields["message"]
    wait_idle(server.address)


def test_inpaint_seams_job_matches_a_local_run(server, tiny: str, local_run) -> None:
    from texgen.client_jobs import run_remote
    from texgen.diffusion import load_generator
    from texgen.mesh import Mesh

    seams_repair = pytest.importorskip("texgen.seams_repair")  # lands with `texgen inpaint-seams`
    SeamSettings, inpaint_seams = seams_repair.SeamSettings, seams_repair.inpaint_seams
    painted, _ = local_run
    rgba = np.dstack([painted.texture, np.full(painted.texture.shape[:2], 255, np.uint8)])
    rgba[20:30, 20:40, 3] = 0  # a hole
    options = {"method": "diffusion", "threshold": "all", "band": 3, "views": 1, "view_size": 64, "steps": 2,
               "prompt": "stone", "seed": 3}
    mesh = Mesh.from_arrays(*mesh_args(uv_sphere()), name="sphere")
    events = []
    remote = run_remote(server.address, mesh, SeamSettings(**options), job="inpaint_seams", texture=rgba,
                        progress=events.append)
    local = inpaint_seams(mesh, rgba, settings=SeamSettings(**options, model=tiny),
                          generator=load_generator(tiny, device="cpu"))
    np.testing.assert_array_equal(remote.texture, local.texture)
    np.testing.assert_array_equal(remote.preview, local.preview)
    assert not np.array_equal(remote.texture, painted.texture)  # something was repaired
    assert any(e.stage == "generate" for e in events)


def test_cancel_mid_job_stops_at_the_next_step(server) -> None:
    with Client(server.address) as client:
        handle = client.submit_texture(*mesh_args(uv_sphere()), options=SLOW)
        events = []
        for event in handle.events():
            events.append(event)
            if isinstance(event, Progress) and event.step >= 1:
                handle.cancel()
                cancelled_at = time.monotonic()
        assert isinstance(events[-1], Cancelled)
        assert time.monotonic() - cancelled_at < 5
        assert not any(isinstance(e, Progress) and e.step > 20 for e in events)
    wait_idle(server.address)


def test_two_clients_at_once(server) -> None:
    results: dict[str, Result] = {}
    errors: list[BaseException] = []

    def run(name: str, png: bool) -> None:
        try:
            with Client(server.address) as client:
                results[name] = client.texture(*mesh_args(uv_sphere()), options=QUICK, png=png)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(name, name == "png")) for name in ("raw", "png")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    np.testing.assert_array_equal(results["raw"].texture, results["png"].texture)  # same seed, lossless PNG


def test_a_client_that_disconnects_mid_job_has_its_job_cancelled(server) -> None:
    client = Client(server.address)
    handle = client.submit_texture(*mesh_args(uv_sphere()), options=SLOW)
    for event in handle.events():
        if isinstance(event, Progress) and event.stage == "generate":
            break
    client.close()  # gone without a word: no more heartbeats
    status = wait_idle(server.address, timeout=15)
    assert status["workers"][0]["restarts"] == 0


def test_fuzz_1000_malformed_messages_then_ping_and_a_job_still_work(server) -> None:
    rng = random.Random(1234)
    templates = [job_frames(QUICK, job="fuzz-job"), [bytes(f) for f in protocol.encode(Message("ping"))],
                 [bytes(f) for f in protocol.encode(Message("cancel", "fuzz-job"))]]
    junk = [None, True, -1, 2**40, 1.5, "", "z" * 300, b"\x00\xff", [], {}, [["faces", "int64", [1, 3], "raw"]]]
    malformed = 0
    with raw_socket(server.address) as sock:
        for _ in range(1200):
            frames = list(rng.choice(templates))
            roll = rng.random()
            if roll < 0.25:
                frames = [rng.randbytes(rng.randint(0, 40)) for _ in range(rng.randint(1, 4))]
            elif roll < 0.5:
                header = msgpack.unpackb(frames[0])
                header[rng.choice(["version", "type", "job", "fields", "frames", "extra"])] = rng.choice(junk)
                frames[0] = msgpack.packb(header)
            elif roll < 0.7 and len(frames) > 1:
                del frames[rng.randrange(1, len(frames))]
            else:
                index = rng.randrange(len(frames))
                data = bytearray(frames[index])
                for _ in range(rng.randint(1, 6)):
                    if data:
                        data[rng.randrange(len(data))] = rng.getrandbits(8)
                frames[index] = bytes(data)
            try:
                protocol.decode(frames)
            except protocol.ProtocolError:
                malformed += 1
            sock.send_multipart(frames)
        replies = []
        while sock.poll(2000):
            replies.append(protocol.decode(sock.recv_multipart()))
        errors = [r for r in replies if r.type == "error" and r.fields["code"] in (
            protocol.BAD_MESSAGE, protocol.VERSION_MISMATCH)]
        assert malformed >= 1000 and len(errors) >= malformed, (malformed, len(errors))
        assert exchange(sock, templates[1]).type == "pong"
    wait_idle(server.address)  # a mutation that happened to be a valid job is cancelled with the silent socket
    with Client(server.address) as client:
        assert client.texture(*mesh_args(uv_sphere()), options=QUICK).texture.shape == (64, 64, 3)


def test_a_killed_worker_fails_only_its_job_and_is_restarted(server) -> None:
    with Client(server.address) as client:
        handle = client.submit_texture(*mesh_args(uv_sphere()), options=SLOW)
        events = handle.events()
        for event in events:
            if isinstance(event, Progress) and event.stage == "generate":
                break
        pid = client.status()["workers"][0]["pid"]
        os.kill(pid, signal.SIGKILL)
        end = list(events)[-1]
        assert isinstance(end, Failed) and end.code == protocol.WORKER_DIED, end
        assert "submit the job again" in end.message
        status = wait_ready(server.address, timeout=180)
        assert status["workers"][0]["restarts"] == 1 and status["workers"][0]["pid"] != pid
        assert client.texture(*mesh_args(uv_sphere()), options=QUICK).texture.shape == (64, 64, 3)
