"""The texgen wire protocol: the one definition the server, the client and the Blender add-on share.

This module imports only the standard library, numpy, pyzmq and msgpack, and no other texgen
module: the Blender add-on vendors it next to ``client.py`` and runs it without torch.

A message is a ZeroMQ multipart message::

    [header, frame_0, frame_1, ...]

``header`` is a msgpack map ``{"version": int, "type": str, "job": str, "fields": map,
"frames": [[name, dtype, shape, encoding], ...]}`` and each following frame holds one array,
described by the matching ``frames`` entry. ``encoding`` is ``"raw"`` (C-order little-endian
bytes of ``dtype`` and ``shape``) or ``"png"`` (an 8-bit image, see :func:`encode_png`).
Arrays go out zero-copy; decoding validates everything and raises :class:`ProtocolError`
naming the field. Nothing off the wire is ever unpickled. See docs/protocol.md.
"""

from __future__ import annotations

import math
import re
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import msgpack
import numpy as np
import zmq

PROTOCOL_VERSION = 1
MAX_HEADER_BYTES = 4 << 20
MAX_NDIM = 4
JOB_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
DTYPES = frozenset({"uint8", "uint16", "int32", "uint32", "int64", "float32", "float64"})
ENCODINGS = ("raw", "png")

# ---------------------------------------------------------------------------- error codes
BAD_MESSAGE = "bad_message"            # malformed: msgpack, types, fields, frames, arrays
VERSION_MISMATCH = "version_mismatch"  # the peer speaks another protocol version
MESSAGE_TOO_LARGE = "message_too_large"
TOO_MANY_FACES = "too_many_faces"
TEXTURE_TOO_LARGE = "texture_too_large"
TOO_MANY_VIEWS = "too_many_views"
QUEUE_FULL = "queue_full"
INVALID_OPTIONS = "invalid_options"    # an option has a bad name or value
INVALID_INPUT = "invalid_input"        # the pipeline refused the mesh or image
UNKNOWN_MODEL = "unknown_model"
UNKNOWN_JOB = "unknown_job"
DUPLICATE_JOB = "duplicate_job"
JOB_FAILED = "job_failed"              # the job raised; the message says what
OUT_OF_MEMORY = "out_of_memory"
WORKER_DIED = "worker_died"
JOB_LOST = "job_lost"                  # the client's verdict after a silence: the server no longer knows the job
SHUTTING_DOWN = "shutting_down"
LIMIT_CODES = (MESSAGE_TOO_LARGE, TOO_MANY_FACES, TEXTURE_TOO_LARGE, TOO_MANY_VIEWS, QUEUE_FULL)


class ProtocolError(Exception):
    """A message breaks the protocol or a server limit. ``code`` is one of the codes above and
    ``field`` names the offending header field or frame ("" when it is the message as a whole)."""

    def __init__(self, message: str, *, code: str = BAD_MESSAGE, field: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.field = field


# ---------------------------------------------------------------------------- schemas
@dataclass(frozen=True)
class ArraySpec:
    """One binary frame a message type may carry.

    shape : per axis an int (exact), a tuple of ints (one of), a letter shared by every array
        of the message (e.g. "F" faces), or None (any length)
    image : an 8-bit image that may travel PNG-encoded
    """

    dtypes: frozenset
    shape: tuple
    required: bool = False
    image: bool = False


@dataclass(frozen=True)
class Schema:
    """What a message type carries: ``fields`` maps a name to (python types, required)."""

    fields: dict
    arrays: dict = field(default_factory=dict)
    needs_job: bool = False


FLOATS = frozenset({"float32", "float64"})
INTS = frozenset({"int32", "uint32", "int64"})
U8 = frozenset({"uint8"})
NUMBER = (int, float)
MESH_ARRAYS = {
    "positions": ArraySpec(FLOATS, ("V", 3), required=True),
    "faces": ArraySpec(INTS, ("F", 3), required=True),
    "uvs": ArraySpec(FLOATS, ("T", 2)),
    "uv_faces": ArraySpec(INTS, ("F", 3)),
}
# the file's shading normals per face corner (OBJ style), optional: inpaint_seams reads hard edges from them
NORMAL_ARRAYS = {"normals": ArraySpec(FLOATS, ("K", 3)), "normal_faces": ArraySpec(INTS, ("F", 3))}
JOB_FIELDS = {"options": (dict, True), "name": (str, False), "image_encoding": (str, False)}
IMAGE = ArraySpec(U8, (None, None, (3, 4)), image=True)

SCHEMAS: dict[str, Schema] = {
    # client -> server
    "hello": Schema({"client": (str, False)}),
    "texture": Schema(JOB_FIELDS, {**MESH_ARRAYS, "texture": IMAGE}, needs_job=True),  # texture: init_texture "mesh"
    "inpaint_seams": Schema(JOB_FIELDS, {**MESH_ARRAYS, **NORMAL_ARRAYS,
                                         "texture": ArraySpec(U8, (None, None, (3, 4)), True, True)}, needs_job=True),
    "cancel": Schema({}, needs_job=True),
    "status": Schema({}),
    "ping": Schema({}),
    # both ways: liveness, optionally about one job (state: queued | running)
    "heartbeat": Schema({"state": (str, False), "position": (int, False), "memory": (dict, False)}),
    # server -> client
    "welcome": Schema({"protocol": (int, True), "texgen": (str, True), "models": (list, True),
                       "architectures": (list, True), "device": (str, True), "workers": (int, True),
                       "limits": (dict, True), "auth": (str, True), "heartbeat_s": (float, True),
                       "client_timeout_s": (float, True)}),
    "accepted": Schema({"position": (int, True)}, needs_job=True),
    "progress": Schema({"stage": (str, True), "view": (int, True), "views": (int, True), "step": (int, True),
                        "steps": (int, True), "message": (str, False), "sent_at": (float, False)},
                       {"preview": ArraySpec(U8, (None, None, 3), image=True)}, needs_job=True),
    "result": Schema({"report": (dict, True), "compute_s": (float, False)},
                     {"texture": ArraySpec(U8, ("N", "N", 3), True, True),
                      "preview": ArraySpec(U8, (None, None, 3), image=True),
                      "uvs": ArraySpec(FLOATS, ("T", 2)), "uv_faces": ArraySpec(INTS, ("F", 3))},
                     needs_job=True),
    "error": Schema({"code": (str, True), "message": (str, True), "field": (str, False)}),
    "cancelled": Schema({"message": (str, False)}, needs_job=True),
    "status_reply": Schema({"jobs": (list, True), "workers": (list, True), "limits": (dict, True)}),
    "pong": Schema({}),
    # server <-> worker (internal, same framing)
    "ready": Schema({"pid": (int, True), "device": (str, True), "models": (list, True),
                     "architectures": (list, True)}),
    "stop": Schema({}),
}
CLIENT_TYPES = frozenset({"hello", "texture", "inpaint_seams", "cancel", "status", "ping", "heartbeat"})
JOB_TYPES = frozenset({"texture", "inpaint_seams"})
TERMINAL_TYPES = frozenset({"result", "error", "cancelled"})


@dataclass
class Message:
    """A decoded (or to-be-encoded) message: ``arrays`` maps frame names to numpy arrays."""

    type: str
    job: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


# ---------------------------------------------------------------------------- encoding
def encode(message: Message, *, png: bool = False, png_level: int = 1) -> list:
    """Frames ``[header, *arrays]`` ready for ``send_multipart(frames, copy=False)``.

    With ``png``, image arrays (see :class:`ArraySpec`) travel PNG-encoded; otherwise raw.
    Arrays are checked against the schema first, so a sender finds its own mistakes.
    """
    validate(message)
    table, frames = [], []
    specs = SCHEMAS[message.type].arrays
    for name, array in message.arrays.items():
        array = np.ascontiguousarray(array)
        if array.dtype.byteorder == ">":
            array = array.astype(array.dtype.newbyteorder("<"))
        if png and specs[name].image:
            table.append([name, "uint8", list(array.shape), "png"])
            frames.append(encode_png(array, level=png_level))
        else:
            table.append([name, array.dtype.name, list(array.shape), "raw"])
            frames.append(memoryview(array).cast("B"))
    return [encode_header(message, table)] + frames


def encode_header(message: Message, table: list) -> bytes:
    header = {"version": PROTOCOL_VERSION, "type": message.type, "job": message.job,
              "fields": message.fields, "frames": table}
    try:
        return msgpack.packb(header, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError(f"{message.type}: fields cannot be packed: {exc}", field="fields") from None


def send(socket: zmq.Socket, message: Message, *, prefix: Sequence[bytes] = (), png: bool = False) -> None:
    """Encode and send ``message`` zero-copy, after the routing ``prefix`` frames."""
    socket.send_multipart([*prefix, *encode(message, png=png)], copy=False)


# ---------------------------------------------------------------------------- decoding
def decode(frames: Sequence[Any], *, allowed: Iterable[str] | None = None, check_values: bool = True) -> Message:
    """Decode and validate ``[header, *arrays]`` (zmq.Frame, bytes or memoryview items).

    ``allowed`` restricts the message types accepted (a server takes only client types).
    ``check_values=False`` skips the scans of array values (NaN, index ranges) for messages a
    trusted peer has already checked (the server's own workers); the structure is always checked.
    Raises ProtocolError naming the field; a version mismatch has code VERSION_MISMATCH.
    """
    header = decode_header(frames[0] if frames else b"")
    kind = header["type"]
    if allowed is not None and kind not in allowed:
        raise ProtocolError(f"type: {kind!r} is not accepted here", field="type")
    table = header["frames"]
    if len(table) != len(frames) - 1:
        raise ProtocolError(f"frames: the header describes {len(table)} frames but {len(frames) - 1} "
                            "followed it", field="frames")
    arrays: dict[str, np.ndarray] = {}
    for entry, frame in zip(table, frames[1:]):
        name, array = _decode_frame(entry, frame, SCHEMAS[kind])
        if name in arrays:
            raise ProtocolError(f"frames: {name!r} appears twice", field=name)
        arrays[name] = array
    message = Message(kind, header["job"], header["fields"], arrays)
    validate(message, check_values=check_values)
    return message


def decode_header(frame: Any) -> dict:
    """Unpack and check the header frame (version, type, job, fields and the frame table)."""
    data = _as_buffer(frame)
    if len(data) > MAX_HEADER_BYTES:
        raise ProtocolError(f"header: {len(data)} bytes, more than the {MAX_HEADER_BYTES} allowed", field="header")
    try:
        header = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises several types (ExtraData, StackError, ValueError...)
        raise ProtocolError(f"header: not valid msgpack ({type(exc).__name__})", field="header") from None
    if not isinstance(header, dict):
        raise ProtocolError(f"header: expected a map, got {type(header).__name__}", field="header")
    for key, kind in (("version", int), ("type", str), ("job", str), ("fields", dict), ("frames", list)):
        if key not in header:
            raise ProtocolError(f"header: missing {key!r}", field=key)
        if not _is(header[key], kind):
            raise ProtocolError(f"{key}: expected {kind.__name__}, got {type(header[key]).__name__}", field=key)
    unknown = set(header) - {"version", "type", "job", "fields", "frames"}
    if unknown:
        raise ProtocolError(f"header: unknown keys {sorted(map(str, unknown))}", field="header")
    if header["version"] != PROTOCOL_VERSION:
        raise ProtocolError(f"this side speaks texgen protocol {PROTOCOL_VERSION}, the peer speaks "
                            f"{header['version']}: install the same texgen version on client and server",
                            code=VERSION_MISMATCH, field="version")
    if header["type"] not in SCHEMAS:
        raise ProtocolError(f"type: unknown message type {header['type'][:40]!r}", field="type")
    return header


def _decode_frame(entry: Any, frame: Any, schema: Schema) -> tuple[str, np.ndarray]:
    if not (isinstance(entry, list) and len(entry) == 4):
        raise ProtocolError("frames: each entry must be [name, dtype, shape, encoding]", field="frames")
    name, dtype, shape, encoding = entry
    if not isinstance(name, str) or name not in schema.arrays:
        raise ProtocolError(f"frames: unexpected frame {str(name)[:40]!r}", field="frames")
    spec = schema.arrays[name]
    if dtype not in DTYPES or dtype not in spec.dtypes:
        raise ProtocolError(f"{name}: dtype {str(dtype)[:20]!r} not allowed; use one of {sorted(spec.dtypes)}",
                            field=name)
    if (not isinstance(shape, list) or len(shape) > MAX_NDIM
            or not all(_is(d, int) and 0 <= d < 2**40 for d in shape)):
        raise ProtocolError(f"{name}: shape must be a list of up to {MAX_NDIM} non-negative ints", field=name)
    if encoding not in ENCODINGS or (encoding == "png" and not spec.image):
        raise ProtocolError(f"{name}: encoding must be 'raw'{' or png' if spec.image else ''}, got {encoding!r}",
                            field=name)
    data = _as_buffer(frame)
    if encoding == "png":
        return name, decode_png(data, expected_shape=tuple(shape), field=name)
    expected = math.prod(shape) * np.dtype(dtype).itemsize
    if len(data) != expected:
        raise ProtocolError(f"{name}: frame has {len(data)} bytes but {dtype}{tuple(shape)} needs {expected}",
                            field=name)
    return name, np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)


def validate(message: Message, *, check_values: bool = True) -> None:
    """Check fields, arrays and (for meshes, unless ``check_values`` is off) values against the
    schema of ``message.type``."""
    schema = SCHEMAS.get(message.type)
    if schema is None:
        raise ProtocolError(f"type: unknown message type {message.type!r}", field="type")
    if message.job and not JOB_ID.fullmatch(message.job):
        raise ProtocolError("job: job ids are 1-64 characters of letters, digits and ._:-", field="job")
    if schema.needs_job and not message.job:
        raise ProtocolError(f"job: a {message.type} message needs a job id", field="job")
    for key, value in message.fields.items():
        if key not in schema.fields:
            raise ProtocolError(f"{message.type}: unknown field {str(key)[:40]!r}", field=str(key))
        kinds = schema.fields[key][0]
        if not _is(value, kinds):
            raise ProtocolError(f"{key}: expected {_names(kinds)}, got {type(value).__name__}", field=key)
    for key, (_, required) in schema.fields.items():
        if required and key not in message.fields:
            raise ProtocolError(f"{message.type}: missing field {key!r}", field=key)
    sizes: dict[str, int] = {}
    for name, array in message.arrays.items():
        spec = schema.arrays.get(name)
        if spec is None:
            raise ProtocolError(f"{message.type}: unexpected array {name!r}", field=name)
        _check_shape(name, array, spec, sizes)
    for name, spec in schema.arrays.items():
        if spec.required and name not in message.arrays:
            raise ProtocolError(f"{message.type}: missing array {name!r}", field=name)
    if "image_encoding" in message.fields and message.fields["image_encoding"] not in ENCODINGS:
        raise ProtocolError(f"image_encoding: must be one of {ENCODINGS}", field="image_encoding")
    if "options" in message.fields:
        _check_options(message.fields["options"])
    if check_values and ("positions" in message.arrays or "uv_faces" in message.arrays):
        _check_mesh(message.arrays)


def _check_shape(name: str, array: np.ndarray, spec: ArraySpec, sizes: dict[str, int]) -> None:
    if not isinstance(array, np.ndarray) or array.dtype.name not in spec.dtypes:
        got = array.dtype.name if isinstance(array, np.ndarray) else type(array).__name__
        raise ProtocolError(f"{name}: must be an array of {sorted(spec.dtypes)}, got {got}", field=name)
    if array.ndim != len(spec.shape):
        raise ProtocolError(f"{name}: must have {len(spec.shape)} dimensions, got shape {array.shape}", field=name)
    for axis, (want, got) in enumerate(zip(spec.shape, array.shape)):
        if isinstance(want, str):
            if sizes.setdefault(want, got) != got:
                raise ProtocolError(f"{name}: axis {axis} has {got} entries but other arrays have {sizes[want]}",
                                    field=name)
        elif isinstance(want, tuple) and got not in want or isinstance(want, int) and got != want:
            raise ProtocolError(f"{name}: axis {axis} must be {want}, got shape {array.shape}", field=name)


def _check_options(options: dict) -> None:
    for key, value in options.items():
        if not isinstance(key, str) or not _is(value, (str, int, float, bool)):
            raise ProtocolError(f"options: {str(key)[:40]!r} must map a name to a string, number or bool",
                                field=f"options.{key}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ProtocolError(f"options.{key}: must be finite, got {value}", field=f"options.{key}")


def _check_mesh(arrays: dict[str, np.ndarray]) -> None:
    positions, faces = arrays.get("positions"), arrays.get("faces")
    if positions is not None:
        if len(faces) == 0:
            raise ProtocolError("faces: the mesh has no faces", field="faces")
        bad = ~np.isfinite(positions).all(axis=1)
        if bad.any():
            raise ProtocolError(f"positions: {int(bad.sum())} vertices are NaN or infinite "
                                f"(first: vertex {int(np.flatnonzero(bad)[0])})", field="positions")
        _check_indices("faces", faces, len(positions))
    if ("uvs" in arrays) != ("uv_faces" in arrays):
        raise ProtocolError("uvs: uvs and uv_faces travel together (per-corner UVs, OBJ style)", field="uvs")
    if "uvs" in arrays:
        if not np.isfinite(arrays["uvs"]).all():
            raise ProtocolError("uvs: UVs contain NaN or infinite values", field="uvs")
        _check_indices("uv_faces", arrays["uv_faces"], len(arrays["uvs"]))
    if ("normals" in arrays) != ("normal_faces" in arrays):
        raise ProtocolError("normals: normals and normal_faces travel together (per-corner normals, OBJ style)",
                            field="normals")
    if "normals" in arrays:
        if not np.isfinite(arrays["normals"]).all():
            raise ProtocolError("normals: normals contain NaN or infinite values", field="normals")
        _check_indices("normal_faces", arrays["normal_faces"], len(arrays["normals"]))


def _check_indices(name: str, indices: np.ndarray, count: int) -> None:
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= count):
        row = int(np.flatnonzero(((indices < 0) | (indices >= count)).any(axis=1))[0])
        raise ProtocolError(f"{name}: row {row} is {indices[row].tolist()}, out of range for {count} entries",
                            field=name)


def _is(value: Any, kinds: Any) -> bool:
    """isinstance that does not count bool as int and lets an int stand for a float."""
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    if isinstance(value, bool):
        return bool in kinds
    if float in kinds and isinstance(value, int):
        return True
    return isinstance(value, kinds)


def _names(kinds: Any) -> str:
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join(k.__name__ for k in kinds)


def _as_buffer(frame: Any) -> memoryview:
    if isinstance(frame, zmq.Frame):
        return frame.buffer
    return memoryview(frame).cast("B")


# ---------------------------------------------------------------------------- limits
@dataclass
class Limits:
    """What a server accepts; sent in ``welcome`` so clients can refuse early with the same words."""

    max_message_bytes: int = 512 << 20
    max_faces: int = 2_000_000
    max_texture_size: int = 4096
    max_views: int = 32
    max_queue: int = 32

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, values: dict) -> "Limits":
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__ and _is(v, int)}
        return cls(**known)


def check_limits(message: Message, limits: Limits, size: int) -> None:
    """Raise ProtocolError with a limit code when a job message of ``size`` bytes exceeds ``limits``."""
    if size > limits.max_message_bytes:
        raise ProtocolError(f"the message is {size / 2**20:.1f} MiB, more than this server's limit of "
                            f"{limits.max_message_bytes / 2**20:.1f} MiB: simplify the mesh",
                            code=MESSAGE_TOO_LARGE, field="message")
    faces = message.arrays.get("faces")
    if faces is not None and len(faces) > limits.max_faces:
        raise ProtocolError(f"faces: {len(faces)} faces, more than this server's limit of {limits.max_faces}: "
                            "decimate the mesh", code=TOO_MANY_FACES, field="faces")
    options = message.fields.get("options", {})
    size_option = options.get("texture_size")
    texture = message.arrays.get("texture")
    for what, value in (("options.texture_size", size_option),
                        ("texture", None if texture is None else max(texture.shape[:2]))):
        if _is(value, int) and value > limits.max_texture_size:
            raise ProtocolError(f"{what}: {value} texels, more than this server's limit of "
                                f"{limits.max_texture_size}", code=TEXTURE_TOO_LARGE, field=what)
    for key in ("views", "max_views") if options.get("views") == "auto" else ("views",):
        value = options.get(key)  # max_views only bounds next-best-view planning ("auto")
        if _is(value, int) and value > limits.max_views:
            raise ProtocolError(f"options.{key}: {value} views, more than this server's limit of "
                                f"{limits.max_views}", code=TOO_MANY_VIEWS, field=f"options.{key}")


def message_size(frames: Sequence[Any]) -> int:
    """Total bytes of a list of frames."""
    return sum(len(_as_buffer(f)) for f in frames)


# ---------------------------------------------------------------------------- PNG (numpy + zlib)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (grey, grey+alpha, RGB, RGBA)


def encode_png(image: np.ndarray, *, level: int = 1) -> bytes:
    """Write an (H, W), (H, W, 1|2|3|4) uint8 image as a non-interlaced 8-bit PNG ("up" filter)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in _COLOR_TYPES or 0 in image.shape:
        raise ProtocolError(f"png: need a non-empty (H, W, 1-4) uint8 image, got {image.dtype}{image.shape}")
    height, width, channels = image.shape
    rows = image.reshape(height, width * channels)
    filtered = np.empty((height, width * channels + 1), np.uint8)
    filtered[:, 0] = 2  # "up": each row stored as its difference to the row above
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    ihdr = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPES[channels], 0, 0, 0)
    return b"".join((PNG_SIGNATURE, _chunk(b"IHDR", ihdr), _chunk(b"IDAT", zlib.compress(filtered, level)),
                     _chunk(b"IEND", b"")))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def decode_png(data: Any, *, expected_shape: tuple | None = None, field: str = "png") -> np.ndarray:
    """Read a non-interlaced 8-bit grey/RGB/RGBA PNG into (H, W, C) uint8.

    ``expected_shape`` (H, W, C) is checked before inflating, so a hostile PNG cannot make the
    reader allocate more than the header promised.
    """
    data = bytes(data)
    if not data.startswith(PNG_SIGNATURE):
        raise ProtocolError(f"{field}: not a PNG", field=field)
    pos, ihdr, idat = len(PNG_SIGNATURE), None, []
    while pos + 12 <= len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length or data[pos + 8 + length:pos + 12 + length] != struct.pack(">I", zlib.crc32(kind + body)):
            raise ProtocolError(f"{field}: PNG chunk {kind!r} is truncated or corrupt", field=field)
        pos += 12 + length
        if kind == b"IHDR":
            ihdr = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if ihdr is None or len(ihdr) != 13:
        raise ProtocolError(f"{field}: PNG has no valid IHDR", field=field)
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    channels = {v: k for k, v in _COLOR_TYPES.items()}.get(color)
    if depth != 8 or channels is None or interlace:
        raise ProtocolError(f"{field}: only non-interlaced 8-bit grey/RGB/RGBA PNGs are supported", field=field)
    shape = (height, width, channels)
    if expected_shape is not None and tuple(expected_shape) != shape:
        raise ProtocolError(f"{field}: PNG is {shape}, the header says {tuple(expected_shape)}", field=field)
    stride = width * channels
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(b"".join(idat), height * (stride + 1) + 1)
    except zlib.error as exc:
        raise ProtocolError(f"{field}: PNG data does not inflate ({exc})", field=field) from None
    if len(raw) != height * (stride + 1):
        raise ProtocolError(f"{field}: PNG data has {len(raw)} bytes, expected {height * (stride + 1)}", field=field)
    return _unfilter(np.frombuffer(raw, np.uint8).reshape(height, stride + 1), channels, field).reshape(shape)


def _unfilter(scan: np.ndarray, bpp: int, field: str) -> np.ndarray:
    """Undo the PNG row filters (0 none, 1 sub, 2 up vectorised; 3 average, 4 paeth per pixel)."""
    height, stride = scan.shape[0], scan.shape[1] - 1
    out = np.zeros((height + 1, stride), np.uint8)  # row 0 is the virtual zero row above the image
    for y in range(height):
        kind, row, prior = int(scan[y, 0]), scan[y, 1:], out[y]
        if kind == 0:
            out[y + 1] = row
        elif kind == 1:
            out[y + 1] = np.cumsum(row.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2:
            out[y + 1] = row + prior
        elif kind in (3, 4):
            cur, up = out[y + 1].astype(np.int32), prior.astype(np.int32)
            for x in range(0, stride, bpp):
                left = cur[x - bpp:x] if x else np.zeros(bpp, np.int32)
                if kind == 3:
                    pred = (left + up[x:x + bpp]) // 2
                else:
                    upleft = up[x - bpp:x] if x else np.zeros(bpp, np.int32)
                    p = left + up[x:x + bpp] - upleft
                    pa, pb, pc = abs(p - left), abs(p - up[x:x + bpp]), abs(p - upleft)
                    pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up[x:x + bpp], upleft))
                cur[x:x + bpp] = (row[x:x + bpp] + pred) & 0xFF
            out[y + 1] = cur
        else:
            raise ProtocolError(f"{field}: PNG row {y} has unknown filter type {kind}", field=field)
    return out[1:]
