"""The wire protocol: encoding, zero-copy decoding, validation errors that name the field, PNG codec."""

from __future__ import annotations

import io
import random

import msgpack
import numpy as np
import pytest
import zmq

from texgen import protocol
from texgen.protocol import Limits, Message, ProtocolError


def mesh_arrays(faces: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    positions = rng.normal(size=(faces + 2, 3))
    tris = np.stack([np.zeros(faces), np.arange(1, faces + 1), np.arange(2, faces + 2)], axis=1).astype(np.int64)
    uvs = rng.uniform(size=(3 * faces, 2)).astype(np.float32)
    return {"positions": positions, "faces": tris, "uvs": uvs,
            "uv_faces": np.arange(3 * faces, dtype=np.int32).reshape(-1, 3)}


def texture_message(**arrays: np.ndarray) -> Message:
    return Message("texture", "job-1", {"options": {"prompt": "bricks", "seed": 3, "guidance": 7.5}},
                   {**mesh_arrays(), **arrays})


def raw_frames(message: Message, *, png: bool = False) -> list[bytes]:
    return [bytes(f) for f in protocol.encode(message, png=png)]


def header_of(frames: list[bytes]) -> dict:
    return msgpack.unpackb(frames[0])


def with_header(original: list[bytes], **changes) -> list[bytes]:
    header = header_of(original)
    header.update(changes)
    return [msgpack.packb(header)] + original[1:]


def refused(frames: list, field: str = "", code: str = protocol.BAD_MESSAGE) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        protocol.decode(frames)
    assert info.value.code == code, info.value
    if field:
        assert info.value.field == field, info.value
        assert field.split(".")[0] in str(info.value)
    return info.value


# ---------------------------------------------------------------------------- round trips
def test_texture_round_trip_keeps_arrays_and_fields() -> None:
    message = texture_message()
    decoded = protocol.decode(raw_frames(message))
    assert (decoded.type, decoded.job, decoded.fields) == ("texture", "job-1", message.fields)
    for name, array in message.arrays.items():
        assert decoded.arrays[name].dtype == array.dtype
        np.testing.assert_array_equal(decoded.arrays[name], array)


def test_every_server_message_type_round_trips() -> None:
    texture = np.random.default_rng(1).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    messages = [
        Message("welcome", fields={"protocol": 1, "texgen": "0.1.0", "models": ["tiny"], "architectures": [],
                                   "device": "cpu", "workers": 1, "limits": Limits().to_dict(), "auth": "none",
                                   "heartbeat_s": 1.0, "client_timeout_s": 15}),
        Message("accepted", "j", {"position": 2}),
        Message("progress", "j", {"stage": "generate", "view": 1, "views": 4, "step": 3, "steps": 10, "message": ""},
                {"preview": texture}),
        Message("heartbeat", "j", {"state": "queued", "position": 1}),
        Message("result", "j", {"report": {"coverage": 0.9, "views": [1, 2], "nested": {"a": None}}},
                {"texture": texture, "preview": texture[:8]}),
        Message("error", "j", {"code": protocol.QUEUE_FULL, "message": "full", "field": "job"}),
        Message("cancelled", "j", {"message": "by request"}),
        Message("status_reply", fields={"jobs": [{"job": "j"}], "workers": [], "limits": {}}),
        Message("pong"),
    ]
    for message in messages:
        for png in (False, True):
            decoded = protocol.decode(raw_frames(message, png=png))
            assert decoded.type == message.type and decoded.fields == message.fields
            for name, array in message.arrays.items():
                np.testing.assert_array_equal(decoded.arrays[name], array)


def test_images_travel_png_only_when_asked() -> None:
    image = np.random.default_rng(2).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    message = Message("result", "j", {"report": {}}, {"texture": image})
    assert header_of(raw_frames(message))["frames"][0][3] == "raw"
    assert header_of(raw_frames(message, png=True))["frames"][0][3] == "png"


def test_decoding_is_zero_copy_over_zmq_frames() -> None:
    context = zmq.Context()
    a, b = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
    try:
        port = a.bind_to_random_port("tcp://127.0.0.1")
        b.connect(f"tcp://127.0.0.1:{port}")
        message = Message("texture", "job-2", {"options": {}}, mesh_arrays(faces=50_000))
        protocol.send(a, message)
        frames = b.recv_multipart(copy=False)
        decoded = protocol.decode(frames)
        faces = decoded.arrays["faces"]
        assert np.shares_memory(faces, np.frombuffer(frames[2].buffer, np.uint8))  # a view of the frame
        np.testing.assert_array_equal(faces, message.arrays["faces"])
    finally:
        a.close(0), b.close(0), context.term()


# ---------------------------------------------------------------------------- validation
def test_malformed_headers_are_refused_with_the_field() -> None:
    good = raw_frames(texture_message())
    refused([b"\xc1garbage"] + good[1:], "header")
    refused([msgpack.packb([1, 2, 3])] + good[1:], "header")
    refused([b""], "header")
    refused([], "header")
    header = header_of(good)
    for key in ("version", "type", "job", "fields", "frames"):
        broken = dict(header)
        del broken[key]
        refused([msgpack.packb(broken)] + good[1:], key)
    refused(with_header(good, type=7), "type")
    refused(with_header(good, type="explode"), "type")
    refused(with_header(good, job=["x"]), "job")
    refused(with_header(good, job="bad id with spaces"), "job")
    refused(with_header(good, fields=[]), "fields")
    refused(with_header(good, extra=1), "header")
    refused(with_header(good, version=True), "version")
    error = refused(with_header(good, version=99), "version", protocol.VERSION_MISMATCH)
    assert "same texgen version" in str(error)


def test_fields_are_checked_by_type_and_name() -> None:
    good = raw_frames(texture_message())
    fields = header_of(good)["fields"]
    refused(with_header(good, fields={}), "options")
    refused(with_header(good, fields={**fields, "surprise": 1}), "surprise")
    refused(with_header(good, fields={**fields, "name": 5}), "name")
    refused(with_header(good, fields={**fields, "image_encoding": "jpeg"}), "image_encoding")
    refused(with_header(good, fields={"options": {"seed": [1]}}), "options.seed")
    refused(with_header(good, fields={"options": {"guidance": float("nan")}}), "options.guidance")
    refused(with_header(good, fields={"options": {"nested": {"a": 1}}}), "options.nested")
    accepted = Message("accepted", "j", {"position": True})
    with pytest.raises(ProtocolError, match="position"):  # a bool is not an int
        protocol.encode(accepted)
    cancel = Message("cancel", "", {})
    with pytest.raises(ProtocolError, match="job id"):
        protocol.encode(cancel)


def test_frames_are_checked_against_their_description() -> None:
    good = raw_frames(texture_message())
    table = header_of(good)["frames"]
    refused(good[:-1], "frames")  # one frame missing
    refused(good + [b"extra"], "frames")
    refused(good[:2] + [good[2][:-8]] + good[3:], "faces")  # truncated
    for dtype in ("object", "<U4", "float16", "O", "V8", "complex64", "pickle"):
        bad = [list(e) for e in table]
        bad[1][1] = dtype
        refused(with_header(good, frames=bad), "faces")
    bad = [list(e) for e in table]
    bad[0][2] = [-1, 3]
    refused(with_header(good, frames=bad), "positions")
    bad[0] = ["secrets", "uint8", [1], "raw"]
    refused(with_header(good, frames=bad), "frames")
    bad = [list(e) for e in table]
    bad[1][3] = "png"
    refused(with_header(good, frames=bad), "faces")
    bad = [list(e) for e in table] + [list(table[0])]
    refused(with_header(good, frames=bad) + [good[1]], "positions")  # a name twice


def test_mesh_values_are_validated() -> None:
    arrays = mesh_arrays()
    cases = {
        "positions": {**arrays, "positions": np.where(np.arange(18).reshape(6, 3) == 4, np.nan, arrays["positions"])},
        "faces": {**arrays, "faces": arrays["faces"] + 10},
        "uv_faces": {**arrays, "uv_faces": arrays["uv_faces"] - 1},
        "uvs": {**arrays, "uvs": np.full_like(arrays["uvs"], np.inf)},
    }
    for field, bad in cases.items():
        message = Message("texture", "j", {"options": {}}, bad)
        frames = [header_of_bytes(message)] + [np.ascontiguousarray(a).tobytes() for a in bad.values()]
        error = refused(frames, field)
        assert "out of range" in str(error) or "NaN" in str(error) or "infinite" in str(error)
    no_uv_faces = {k: v for k, v in arrays.items() if k != "uv_faces"}
    with pytest.raises(ProtocolError, match="together"):
        protocol.encode(Message("texture", "j", {"options": {}}, no_uv_faces))
    with pytest.raises(ProtocolError, match="axis 0"):
        protocol.encode(Message("texture", "j", {"options": {}}, {**arrays, "uv_faces": arrays["uv_faces"][:2]}))
    with pytest.raises(ProtocolError, match="no faces"):
        protocol.encode(Message("texture", "j", {"options": {}}, {"positions": arrays["positions"],
                                                                   "faces": np.zeros((0, 3), np.int64)}))


def test_an_inpaint_job_may_carry_the_files_normals() -> None:
    normals = {"normals": np.tile([[0.0, 0.0, 1.0]], (12, 1)), "normal_faces": np.arange(12).reshape(-1, 3)}
    seams = {**mesh_arrays(), "texture": np.zeros((8, 8, 3), np.uint8)}
    decoded = protocol.decode(protocol.encode(Message("inpaint_seams", "j", {"options": {}}, {**seams, **normals})))
    assert np.array_equal(decoded.arrays["normals"], normals["normals"])
    assert np.array_equal(decoded.arrays["normal_faces"], normals["normal_faces"])
    cases = {"normal_faces": {**normals, "normal_faces": normals["normal_faces"] + 1},
             "normals": {**normals, "normals": np.full((12, 3), np.nan)}}
    for field, bad in cases.items():
        message = Message("inpaint_seams", "j", {"options": {}}, {**seams, **bad})
        frames = [header_of_bytes(message)] + [np.ascontiguousarray(a).tobytes() for a in message.arrays.values()]
        assert "out of range" in str(refused(frames, field)) or "NaN" in str(refused(frames, field))
    with pytest.raises(ProtocolError, match="together"):
        protocol.encode(Message("inpaint_seams", "j", {"options": {}}, {**seams, "normals": normals["normals"]}))
    with pytest.raises(ProtocolError, match="unexpected array 'normals'"):  # a texture job has no use for them
        protocol.encode(Message("texture", "j", {"options": {}}, {**mesh_arrays(), **normals}))


def header_of_bytes(message: Message) -> bytes:
    """A header for ``message`` without the sender-side validation (to build bad messages)."""
    table = [[n, a.dtype.name, list(a.shape), "raw"] for n, a in message.arrays.items()]
    return protocol.encode_header(message, table)


def test_random_and_mutated_messages_only_raise_protocol_errors() -> None:
    rng = random.Random(7)
    good = raw_frames(texture_message())
    values = [None, True, -1, 0, 2**63, 1.5, float("nan"), "", "x" * 100, b"\x00", [], {}, [1, "a"], {"a": []}]
    for _ in range(3000):
        choice = rng.random()
        if choice < 0.3:
            frames = [bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
                      for _ in range(rng.randint(0, 4))]
        elif choice < 0.6:
            header = header_of(good)
            path = rng.choice(["version", "type", "job", "fields", "frames"])
            header[path] = rng.choice(values)
            frames = [msgpack.packb(header)] + good[1:]
        else:
            frames = list(good)
            index = rng.randrange(len(frames))
            data = bytearray(frames[index])
            for _ in range(rng.randint(1, 8)):
                if data:
                    data[rng.randrange(len(data))] = rng.getrandbits(8)
            frames[index] = bytes(data[:rng.randint(0, len(data))] if rng.random() < 0.3 else data)
        try:
            protocol.decode(frames)
        except ProtocolError:
            pass


# ---------------------------------------------------------------------------- limits
def test_limits_have_their_own_codes() -> None:
    limits = Limits(max_message_bytes=1000, max_faces=3, max_texture_size=64, max_views=4, max_queue=1)
    small = Limits(max_faces=100)
    message = texture_message()
    protocol.check_limits(message, small, 10)
    cases = [
        (texture_message(), 2000, protocol.MESSAGE_TOO_LARGE),
        (texture_message(), 10, protocol.TOO_MANY_FACES),
    ]
    for msg, size, code in cases:
        with pytest.raises(ProtocolError) as info:
            protocol.check_limits(msg, limits, size)
        assert info.value.code == code
    limits.max_faces = 100
    for options, code, field in (({"texture_size": 128}, protocol.TEXTURE_TOO_LARGE, "options.texture_size"),
                                 ({"views": 5}, protocol.TOO_MANY_VIEWS, "options.views"),
                                 ({"views": "auto", "max_views": 9}, protocol.TOO_MANY_VIEWS, "options.max_views")):
        message = Message("texture", "j", {"options": options}, mesh_arrays())
        with pytest.raises(ProtocolError) as info:
            protocol.check_limits(message, limits, 10)
        assert (info.value.code, info.value.field) == (code, field)
        assert "limit" in str(info.value)
    big = Message("inpaint_seams", "j", {"options": {}}, {**mesh_arrays(), "texture": np.zeros((80, 80, 3), np.uint8)})
    with pytest.raises(ProtocolError, match="texture: 80"):
        protocol.check_limits(big, limits, 10)
    assert Limits.from_dict({**limits.to_dict(), "unknown": 1, "max_views": "x"}).max_views == Limits().max_views


# ---------------------------------------------------------------------------- PNG
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png_round_trip(channels: int) -> None:
    image = np.random.default_rng(channels).integers(0, 256, (37, 53, channels), dtype=np.uint8)
    np.testing.assert_array_equal(protocol.decode_png(protocol.encode_png(image)), image)


def test_png_interoperates_with_pillow() -> None:
    Image = pytest.importorskip("PIL.Image")
    yy, xx = np.mgrid[0:61, 0:47]
    noise = np.random.default_rng(3).integers(0, 40, (61, 47, 3))
    image = np.stack([xx * 5, yy * 4, (xx * yy) % 256], axis=2) + noise
    image = (image % 256).astype(np.uint8)
    for mode, array in (("RGB", image), ("RGBA", np.dstack([image, image[:, :, :1]])), ("L", image[:, :, 0])):
        buffer = io.BytesIO()
        Image.fromarray(array, mode).save(buffer, format="PNG", optimize=True)  # adaptive filters 0-4
        decoded = protocol.decode_png(buffer.getvalue())
        np.testing.assert_array_equal(decoded.reshape(array.shape), array)
        ours = Image.open(io.BytesIO(protocol.encode_png(array)))
        np.testing.assert_array_equal(np.asarray(ours), array)


def test_png_refuses_lies_and_corruption() -> None:
    image = np.zeros((400, 400, 3), np.uint8)
    data = protocol.encode_png(image, level=9)
    with pytest.raises(ProtocolError, match="header says"):
        protocol.decode_png(data, expected_shape=(4, 4, 3))
    corrupt = bytearray(data)
    corrupt[40] ^= 0xFF
    with pytest.raises(ProtocolError, match="corrupt|inflate|expected"):
        protocol.decode_png(bytes(corrupt))
    with pytest.raises(ProtocolError, match="not a PNG"):
        protocol.decode_png(b"GIF89a")
    message = Message("result", "j", {"report": {}}, {"texture": np.zeros((8, 8, 3), np.uint8)})
    frames = raw_frames(message, png=True)
    table = header_of(frames)["frames"]
    table[0][2] = [4096, 4096, 3]  # claims a bigger image than the PNG holds
    refused(with_header(frames, frames=table), "texture")
