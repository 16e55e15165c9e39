"""The client on its own: errors that say what to do, key handling, events, no server needed."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import zmq
import zmq.auth

from server_support import free_port
from texgen import client as remote, protocol
from texgen.client import AuthRefused, Client, ServerUnreachable
from texgen.protocol import Message


def test_no_server_is_reported_with_what_to_do() -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with Client(address, timeout=0.3, retries=1) as client:
        with pytest.raises(ServerUnreachable) as info:
            client.hello()
    assert 0.5 < time.monotonic() - start < 3.0  # two tries of 0.3 s, then give up
    assert address in str(info.value) and "texgen serve" in str(info.value) and "2 tries" in str(info.value)


def test_a_peer_that_is_not_texgen_is_told_apart_from_no_server() -> None:
    context = zmq.Context()
    silent = context.socket(zmq.ROUTER)
    port = silent.bind_to_random_port("tcp://127.0.0.1")
    try:
        with Client(f"tcp://127.0.0.1:{port}", timeout=0.3, retries=0) as client:
            with pytest.raises(ServerUnreachable, match="accepted the connection but did not answer"):
                client.ping()
    finally:
        silent.close(0)
        context.term()


def test_a_peer_speaking_another_version_raises_version_mismatch() -> None:
    import msgpack

    context = zmq.Context()
    server = context.socket(zmq.ROUTER)
    port = server.bind_to_random_port("tcp://127.0.0.1")
    try:
        with Client(f"tcp://127.0.0.1:{port}", timeout=2, retries=0) as client:
            client._socket.send_multipart([bytes(f) for f in remote.protocol.encode(Message("ping"))])
            identity = server.recv_multipart()[0]
            future = {"version": 2, "type": "pong", "job": "", "fields": {}, "frames": []}
            server.send_multipart([identity, msgpack.packb(future)])
            with pytest.raises(remote.VersionMismatch, match="same texgen version"):
                client._receive(2)
    finally:
        server.close(0)
        context.term()


def test_bad_addresses_and_keys_say_what_to_use(tmp_path) -> None:
    with pytest.raises(ServerUnreachable, match="tcp://HOST:PORT"):
        Client("gpu-box:5555")
    with pytest.raises(AuthRefused, match="both"):
        Client("tcp://127.0.0.1:5555", server_public_key=b"x" * 40)
    public, secret = zmq.auth.create_certificates(str(tmp_path), "alice")
    with pytest.raises(AuthRefused, match="no secret key"):
        Client("tcp://127.0.0.1:5555", server_public_key=public, client_keys=public)
    with pytest.raises(AuthRefused, match="cannot read"):
        Client("tcp://127.0.0.1:5555", server_public_key=public, client_keys=tmp_path / "missing.key_secret")
    pair = remote.key_pair(secret)
    assert remote.public_key(public) == pair[0] and remote.key_pair(pair) == pair
    Client("tcp://127.0.0.1:5555", server_public_key=pair[0].decode(), client_keys=secret).close()


def test_progress_fraction_and_event_conversion() -> None:
    preview = np.zeros((4, 4, 3), np.uint8)
    event = remote._to_event(Message("progress", "j", {"stage": "generate", "view": 1, "views": 4, "step": 5,
                                                        "steps": 10}, {"preview": preview}))
    assert isinstance(event, remote.Progress) and event.fraction == pytest.approx(1.5 / 4)
    assert event.preview is preview and event.message == ""
    failed = remote._to_event(Message("error", "j", {"code": "queue_full", "message": "full"}))
    assert isinstance(failed, remote.Failed) and failed.code == "queue_full"
    assert remote._to_event(Message("pong")) is None


def scripted_peer(replies: dict[str, Message | None]) -> tuple[str, threading.Thread, threading.Event]:
    """A bare ROUTER on loopback that answers each request type with ``replies[type]`` (None: silence)."""
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.router_handover = 1
    port = router.bind_to_random_port("tcp://127.0.0.1")
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            if router.poll(50):
                identity, *frames = router.recv_multipart()
                request = remote.protocol.decode(frames)
                reply = replies.get(request.type)
                if reply is not None:
                    job = request.job if reply.type == "accepted" else ""
                    router.send_multipart([identity, *map(bytes, remote.protocol.encode(
                        Message(reply.type, job, reply.fields)))])
        router.close(0)
        context.term()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"tcp://127.0.0.1:{port}", thread, done


WELCOME = Message("welcome", fields={"protocol": 1, "texgen": "test", "models": [], "architectures": [],
                                     "device": "cpu", "workers": 1, "limits": remote.protocol.Limits().to_dict(),
                                     "auth": "none", "heartbeat_s": 0.1, "client_timeout_s": 10.0})
MESH = (np.eye(3), np.array([[0, 1, 2]]))


@pytest.mark.parametrize("status", [None, Message("status_reply", fields={"jobs": [], "workers": [], "limits": {}})])
def test_a_server_that_goes_silent_mid_job_is_detected(status) -> None:
    address, thread, done = scripted_peer({"hello": WELCOME, "texture": Message("accepted", fields={"position": 1}),
                                           "status": status})
    try:
        with Client(address, timeout=0.3, retries=1, silence_timeout=0.5) as client:
            handle = client.submit_texture(*MESH, options={})
            if status is None:  # gone: the reconnect finds nobody
                with pytest.raises(ServerUnreachable, match="stopped answering during job"):
                    list(handle.events())
            else:  # back, but it forgot the job (restarted)
                end = list(handle.events())[-1]
                assert isinstance(end, remote.Failed) and end.code == protocol.JOB_LOST and "submit the job again" in end.message
    finally:
        done.set()
        thread.join()
