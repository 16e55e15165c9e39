"""The client on its own: errors that say what to do, key handling, events, no server needed."""

from __future__ import annotations

import time

import numpy as np
import pytest
import zmq
import zmq.auth

from server_support import free_port
from texgen import client as remote
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
