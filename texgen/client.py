"""Synchronous texgen client (a ZeroMQ DEALER) for scripts, ``texgen texture --server`` and Blender.

It imports only the standard library, numpy, pyzmq and the sibling ``protocol`` module, so the
Blender add-on vendors ``protocol.py`` and ``client.py`` side by side in one package.

    with Client("tcp://gpu-box:5555", server_public_key="server.key",
                client_keys="artist.key_secret") as client:
        print(client.hello()["models"])
        result = client.texture(positions, faces, uvs, uv_faces, options={"prompt": "old bricks"})
        handle = client.submit_texture(positions, faces, uvs, uv_faces, options={...})
        for event in handle.events():      # Accepted, Progress, Heartbeat, then Result/Failed/Cancelled
            ...

Threads: a Client belongs to the thread that created it. Only :meth:`JobHandle.cancel` may be
called from another thread (a UI's cancel button); the following thread sends it.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from . import protocol
from .protocol import Message, ProtocolError

DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"
KeySource = Union[str, Path, bytes]


# ---------------------------------------------------------------------------- errors
class ClientError(Exception):
    """Base of the client's errors; each message says what to do."""


class ServerUnreachable(ClientError):
    """No texgen server answered at the address, or it stopped answering."""


class VersionMismatch(ClientError):
    """Client and server speak different protocol versions."""


class AuthRefused(ClientError):
    """The CURVE handshake failed: unknown client key, wrong server key, or CURVE on one side only."""


class ServerError(ClientError):
    """The server answered with an error: ``code`` (see protocol), ``message``, ``field``, ``job``."""

    def __init__(self, code: str, message: str, job: str = "", field: str = "") -> None:
        super().__init__(f"{message} [{code}]")
        self.code, self.message, self.job, self.field = code, message, job, field


class JobFailed(ServerError):
    """A job was refused (limits, bad options, bad mesh) or failed on the server."""


class JobCancelled(ClientError):
    """The job was cancelled (by this client, or because the server shut down its worker)."""


# ---------------------------------------------------------------------------- events
@dataclass
class Accepted:
    job: str
    position: int  # 0 = running now, n = n-th in the queue


@dataclass
class Progress:
    job: str
    stage: str
    view: int
    views: int
    step: int
    steps: int
    message: str = ""
    preview: Optional[np.ndarray] = None  # small (h, w, 3) uint8
    sent_at: float = 0.0  # the worker's time.time() when it sent the event

    @property
    def fraction(self) -> float:
        """Rough overall progress in [0, 1] from the view and step counters."""
        if not self.views:
            return 0.0
        step = self.step / self.steps if self.steps else 0.0
        return min(1.0, (self.view + step) / self.views)


@dataclass
class Heartbeat:
    job: str
    state: str  # queued | running
    position: int


@dataclass
class Result:
    """texture : (N, N, 3) uint8; uvs/uv_faces only when the server made the UV layout."""

    job: str
    texture: np.ndarray
    report: dict
    preview: Optional[np.ndarray] = None
    uvs: Optional[np.ndarray] = None
    uv_faces: Optional[np.ndarray] = None
    compute_s: float = 0.0  # the worker's seconds from the received arrays to the result


@dataclass
class Failed:
    job: str
    code: str
    message: str
    field: str = ""


@dataclass
class Cancelled:
    job: str
    message: str = ""


Event = Union[Accepted, Progress, Heartbeat, Result, Failed, Cancelled]
TERMINAL = (Result, Failed, Cancelled)
_HANDSHAKE_EVENTS = (zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                     | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


def new_job_id() -> str:
    return uuid.uuid4().hex


def public_key(source: KeySource) -> bytes:
    """A Z85 public key given as 40 bytes/characters or as a key file path."""
    if isinstance(source, (bytes, str)) and len(source) == 40 and not Path(str(source)).exists():
        return source.encode() if isinstance(source, str) else source
    return _load_certificate(source)[0]


def key_pair(source: Union[KeySource, tuple]) -> tuple[bytes, bytes]:
    """A (public, secret) pair given as a tuple or as a NAME.key_secret file path."""
    if isinstance(source, tuple):
        return tuple(k.encode() if isinstance(k, str) else k for k in source)  # type: ignore[return-value]
    public, secret = _load_certificate(source)
    if not secret:
        raise AuthRefused(f"{source}: holds no secret key; give the client's NAME.key_secret file "
                          "(made by `texgen keys generate`)")
    return public, secret


def _load_certificate(path: KeySource) -> tuple[bytes, Optional[bytes]]:
    import zmq.auth

    try:
        return zmq.auth.load_certificate(str(path if not isinstance(path, bytes) else path.decode()))
    except (OSError, ValueError) as exc:
        raise AuthRefused(f"cannot read the key file {path}: {exc}") from None


# ---------------------------------------------------------------------------- client
class Client:
    """A connection to one texgen server.

    timeout : seconds to wait for the reply to one request (hello, ping, status, submit)
    retries : Lazy-Pirate retries: after a timeout the socket is closed (linger 0), reopened and
        the request sent again, this many times, before ServerUnreachable
    silence_timeout : seconds a running job may stay silent (no event, no heartbeat) before the
        client checks whether the server is still there
    server_public_key, client_keys : CURVE keys for a remote server (both or neither)
    """

    def __init__(self, address: str = DEFAULT_ADDRESS, *, server_public_key: Optional[KeySource] = None,
                 client_keys: Union[KeySource, tuple, None] = None, timeout: float = 5.0, retries: int = 2,
                 silence_timeout: float = 30.0, heartbeat_s: float = 1.0, name: str = "texgen-client") -> None:
        if (server_public_key is None) != (client_keys is None):
            raise AuthRefused("CURVE needs both the server's public key and this client's key pair "
                              "(make one with `texgen keys generate DIR --name NAME`)")
        self.address, self.timeout, self.retries = address, float(timeout), int(retries)
        self.silence_timeout, self.heartbeat_s, self.name = float(silence_timeout), float(heartbeat_s), name
        self._curve = None
        if server_public_key is not None:
            self._curve = (public_key(server_public_key), *key_pair(client_keys))
        self._identity = f"c-{uuid.uuid4().hex}".encode()
        self._context = zmq.Context()
        self._socket: Optional[zmq.Socket] = None
        self._monitor: Optional[zmq.Socket] = None
        self._handshake_ok = False
        self._inbox: dict[str, list[Message]] = {}
        self.server: Optional[dict] = None
        self.limits: Optional[protocol.Limits] = None
        self._open()

    # ------------------------------------------------------------------ socket lifecycle
    def _open(self) -> None:
        socket = self._context.socket(zmq.DEALER)
        socket.linger = 0
        socket.routing_id = self._identity
        socket.reconnect_ivl = 100
        socket.reconnect_ivl_max = 2000
        if self._curve is not None:
            socket.curve_serverkey, socket.curve_publickey, socket.curve_secretkey = self._curve
        self._monitor = socket.get_monitor_socket(_HANDSHAKE_EVENTS)
        try:
            socket.connect(self.address)
        except zmq.ZMQError as exc:
            self._socket = socket
            self._close_socket()
            raise ServerUnreachable(f"{self.address!r} is not a usable ZeroMQ address ({exc}): "
                                    "use tcp://HOST:PORT, e.g. tcp://127.0.0.1:5555") from None
        self._socket = socket
        self._handshake_ok = False

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.disable_monitor()
            self._socket.close(linger=0)
        if self._monitor is not None:
            self._monitor.close(linger=0)
        self._socket = self._monitor = None

    def _reopen(self) -> None:
        self._close_socket()
        self._open()

    def close(self) -> None:
        """Close the socket and the context; the client cannot be used afterwards."""
        self._close_socket()
        self._context.term()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ requests
    def hello(self) -> dict:
        """Check the version and return the server's capabilities (models, device, limits...)."""
        reply = self._request(Message("hello", fields={"client": self.name}), {"welcome"})
        self.server = dict(reply.fields)
        self.limits = protocol.Limits.from_dict(reply.fields["limits"])
        self.heartbeat_s = min(self.heartbeat_s, reply.fields["client_timeout_s"] / 4)
        self.silence_timeout = max(self.silence_timeout, 3 * reply.fields["heartbeat_s"])
        return dict(self.server)

    def ping(self) -> float:
        """Round-trip time in seconds."""
        start = time.perf_counter()
        self._request(Message("ping"), {"pong"})
        return time.perf_counter() - start

    def status(self) -> dict:
        """The server's jobs (state, position, progress), workers (device, memory) and limits."""
        return dict(self._request(Message("status"), {"status_reply"}).fields)

    def cancel(self, job_id: str) -> None:
        """Ask the server to cancel ``job_id``; its ``Cancelled`` event follows on the job's stream."""
        protocol.send(self._socket, Message("cancel", job_id))

    def submit_texture(self, positions: np.ndarray, faces: np.ndarray, uvs: Optional[np.ndarray] = None,
                       uv_faces: Optional[np.ndarray] = None, *, options: Optional[Mapping[str, Any]] = None,
                       name: str = "mesh", job_id: Optional[str] = None, png: bool = False,
                       texture: Optional[np.ndarray] = None) -> "JobHandle":
        """Queue a texture job and return at once. ``options`` uses `texgen texture`'s names
        (prompt, seed, views, view_size, texture_size, steps, guidance, model...).
        ``png`` asks for PNG-encoded images (smaller on slow links, slower to encode).
        ``texture`` : the texture to start from, (H, W[, 1|3|4]) uint8 or float in [0, 1]; it goes
        with options init_texture = "mesh" (and init_strength)."""
        arrays = _mesh_arrays(positions, faces, uvs, uv_faces)
        if texture is not None:
            arrays["texture"] = _image_u8(texture)
        return self._submit("texture", arrays, options, name, job_id, png)

    def submit_inpaint_seams(self, positions: np.ndarray, faces: np.ndarray, uvs: np.ndarray, uv_faces: np.ndarray,
                             texture: np.ndarray, *, options: Optional[Mapping[str, Any]] = None,
                             name: str = "mesh", job_id: Optional[str] = None, png: bool = False,
                             normals: Optional[np.ndarray] = None,
                             normal_faces: Optional[np.ndarray] = None) -> "JobHandle":
        """Queue a seam-inpainting job for ``texture`` on the mesh's UVs: (H, W[, 1|3|4]) uint8, or
        float in [0, 1]; alpha below 128 marks holes to fill. ``normals`` (K, 3) and ``normal_faces``
        (F, 3), the mesh's shading normals per face corner, mark its hard edges where they split."""
        arrays = _mesh_arrays(positions, faces, uvs, uv_faces)
        if normals is not None:
            arrays["normals"], arrays["normal_faces"] = _floats(normals), _ints(normal_faces)
        arrays["texture"] = _image_u8(texture)
        return self._submit("inpaint_seams", arrays, options, name, job_id, png)

    def texture(self, *args: Any, on_event: Optional[Callable[[Event], None]] = None, **kwargs: Any) -> Result:
        """Run a texture job to the end (arguments as :meth:`submit_texture`)."""
        return self.submit_texture(*args, **kwargs).result(on_event)

    def inpaint_seams(self, *args: Any, on_event: Optional[Callable[[Event], None]] = None, **kwargs: Any) -> Result:
        """Run a seam-inpainting job to the end (arguments as :meth:`submit_inpaint_seams`)."""
        return self.submit_inpaint_seams(*args, **kwargs).result(on_event)

    def _submit(self, kind: str, arrays: dict, options: Optional[Mapping[str, Any]], name: str,
                job_id: Optional[str], png: bool) -> "JobHandle":
        if self.server is None:
            self.hello()
        message = Message(kind, job_id or new_job_id(),
                          {"options": dict(options or {}), "name": name, "image_encoding": "png" if png else "raw"},
                          arrays)
        try:
            frames = protocol.encode(message)
            protocol.check_limits(message, self.limits, protocol.message_size(frames))
        except ProtocolError as exc:
            raise JobFailed(exc.code, str(exc), message.job, exc.field) from None
        reply = self._request(message, {"accepted"}, frames=frames)
        return JobHandle(self, message.job, reply.fields["position"])

    def _request(self, message: Message, expect: set, frames: Optional[list] = None) -> Message:
        """Send and wait for a reply of a type in ``expect`` for the same job (Lazy Pirate)."""
        frames = frames if frames is not None else protocol.encode(message)
        connected = False
        for _ in range(self.retries + 1):
            self._socket.send_multipart(frames, copy=False)
            deadline = time.monotonic() + self.timeout
            while (left := deadline - time.monotonic()) > 0:
                reply = self._receive(left)
                if reply is None:
                    break
                if reply.job == message.job and reply.type in expect:
                    return reply
                if reply.job == message.job and reply.type == "error":
                    raise self._error(reply)
                self._stash(reply)
            self._check_handshake()
            connected = connected or self._handshake_ok
            self._reopen()
        if connected:
            raise ServerUnreachable(f"the server at {self.address} accepted the connection but did not answer "
                                    f"a {message.type} within {self.timeout:g} s ({self.retries + 1} tries): is it "
                                    "a texgen server, and is it overloaded? Check its log")
        raise ServerUnreachable(f"no texgen server answered at {self.address} within {self.timeout:g} s "
                                f"({self.retries + 1} tries): start it with `texgen serve` or check the "
                                "address/firewall")

    def _receive(self, timeout: float) -> Optional[Message]:
        """The next message from the server, or None after ``timeout`` seconds; watches the handshake."""
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready = dict(poller.poll(left * 1000))
            if self._monitor in ready:
                self._check_handshake()
            if self._socket in ready:
                frames = self._socket.recv_multipart(copy=False)
                try:
                    return protocol.decode(frames)
                except ProtocolError as exc:
                    if exc.code == protocol.VERSION_MISMATCH:
                        raise VersionMismatch(f"the server at {self.address}: {exc}") from None
                    raise ClientError(f"the server at {self.address} sent a malformed message ({exc}); "
                                      "is it a texgen server of the same version?") from None
        return None

    def _check_handshake(self) -> None:
        while self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)["event"]
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._handshake_ok = True
            elif event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                raise AuthRefused(f"the server at {self.address} refused this client's key: copy the client's "
                                  "public key file (NAME.key) into the server's --allow folder and restart it")
            elif self._curve is None:  # any failed handshake: the server speaks CURVE and we do not
                raise AuthRefused(f"the server at {self.address} requires CURVE: pass its public key (server.key) "
                                  "and your key pair (NAME.key_secret, whose NAME.key is in the server's --allow "
                                  "folder)")
            elif event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                raise AuthRefused(f"security mismatch with {self.address}: this client uses CURVE but the server "
                                  "does not (it runs on loopback or with --insecure); connect without keys")
            else:
                raise AuthRefused(f"the CURVE handshake with {self.address} failed: the server public key given "
                                  "to this client does not match the server's key (server.key)")

    def _stash(self, message: Message) -> None:
        if message.job and message.type in ("accepted", "progress", "heartbeat") + tuple(protocol.TERMINAL_TYPES):
            self._inbox.setdefault(message.job, []).append(message)

    def _error(self, reply: Message) -> ServerError:
        code, text = reply.fields["code"], reply.fields["message"]
        if code == protocol.VERSION_MISMATCH:
            return VersionMismatch(f"the server at {self.address}: {text}")
        cls = JobFailed if reply.job else ServerError
        return cls(code, text, reply.job, reply.fields.get("field", ""))

    # ------------------------------------------------------------------ job events
    def _follow(self, handle: "JobHandle") -> Iterator[Event]:
        yield Accepted(handle.job, handle.position)
        heard = next_beat = time.monotonic()
        while True:
            if handle._cancel.is_set() and not handle._cancel_sent:
                self.cancel(handle.job)
                handle._cancel_sent = True
            now = time.monotonic()
            if now >= next_beat:
                protocol.send(self._socket, Message("heartbeat", handle.job))
                next_beat = now + self.heartbeat_s
            queued = self._inbox.get(handle.job)
            message = queued.pop(0) if queued else self._receive(min(0.1, max(next_beat - now, 0.0)))
            if message is None:
                if time.monotonic() - heard > self.silence_timeout:
                    lost = self._recover(handle)
                    if lost is not None:
                        yield lost
                        return
                    heard = time.monotonic()
                continue
            heard = time.monotonic()
            if message.job != handle.job:
                self._stash(message)
                continue
            event = _to_event(message)
            if event is not None and not isinstance(event, Accepted):  # a retried submit's second reply
                yield event
                if isinstance(event, TERMINAL):
                    self._inbox.pop(handle.job, None)
                    return

    def _recover(self, handle: "JobHandle") -> Optional[Failed]:
        """After a silence: reconnect (Lazy Pirate) and ask whether the server still has the job."""
        self._reopen()
        try:
            jobs = self.status()["jobs"]
        except ServerUnreachable:
            raise ServerUnreachable(f"the server at {self.address} stopped answering during job {handle.job} "
                                    f"(silent for {self.silence_timeout:g} s): check that `texgen serve` is "
                                    "still running and its log") from None
        if any(isinstance(j, dict) and j.get("job") == handle.job for j in jobs):
            return None
        return Failed(handle.job, protocol.JOB_LOST, f"the server at {self.address} no longer knows job {handle.job} "
                                          "(was it restarted?): submit the job again")


class JobHandle:
    """A submitted job. Iterate :meth:`events` (or call :meth:`result`) on the client's thread."""

    def __init__(self, client: Client, job: str, position: int) -> None:
        self.job, self.position = job, position
        self._client = client
        self._cancel = threading.Event()
        self._cancel_sent = False

    def cancel(self) -> None:
        """Request cancellation; safe from any thread. A ``Cancelled`` event ends the stream."""
        self._cancel.set()

    def events(self) -> Iterator[Event]:
        """Accepted, then Progress and Heartbeat events in order, then one Result, Failed or Cancelled."""
        return self._client._follow(self)

    def result(self, on_event: Optional[Callable[[Event], None]] = None) -> Result:
        """Wait for the result; raise JobFailed or JobCancelled. Ctrl-C cancels the job on the server."""
        try:
            for event in self.events():
                if on_event is not None:
                    on_event(event)
                if isinstance(event, Result):
                    return event
                if isinstance(event, Failed):
                    raise JobFailed(event.code, event.message, event.job, event.field)
                if isinstance(event, Cancelled):
                    raise JobCancelled(f"job {event.job} was cancelled: {event.message or 'by request'}")
        except KeyboardInterrupt:
            self._client.cancel(self.job)
            raise
        raise ClientError(f"job {self.job}: the event stream ended without a result")


def _mesh_arrays(positions: np.ndarray, faces: np.ndarray, uvs: Optional[np.ndarray],
                 uv_faces: Optional[np.ndarray]) -> dict[str, np.ndarray]:
    arrays = {"positions": _floats(positions), "faces": _ints(faces)}
    if uvs is not None:
        arrays["uvs"] = _floats(uvs)
    if uv_faces is not None:
        arrays["uv_faces"] = _ints(uv_faces)
    return arrays


def _floats(array: Sequence) -> np.ndarray:
    array = np.asarray(array)
    return np.ascontiguousarray(array if array.dtype in (np.float32, np.float64) else array.astype(np.float64))


def _ints(array: Sequence) -> np.ndarray:
    """Index arrays travel as int32 when they fit (half the bytes of int64; the server widens them)."""
    array = np.asarray(array)
    if array.dtype.name not in protocol.INTS:
        array = array.astype(np.int64)
    if array.dtype == np.int64 and array.size and 0 <= array.min() and array.max() < 2**31:
        array = array.astype(np.int32)
    return np.ascontiguousarray(array)


def _image_u8(image: np.ndarray) -> np.ndarray:
    """(H, W, 3|4) uint8 from grey, RGB or RGBA, uint8 or float in [0, 1]."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    if np.issubdtype(image.dtype, np.floating):
        image = np.clip(np.round(np.nan_to_num(image) * 255.0), 0, 255)
    return np.ascontiguousarray(image, dtype=np.uint8)


def _to_event(message: Message) -> Optional[Event]:
    f, a, job = message.fields, message.arrays, message.job
    if message.type == "accepted":
        return Accepted(job, f["position"])
    if message.type == "progress":
        return Progress(job, f["stage"], f["view"], f["views"], f["step"], f["steps"], f.get("message", ""),
                        a.get("preview"), f.get("sent_at", 0.0))
    if message.type == "heartbeat":
        return Heartbeat(job, f.get("state", ""), f.get("position", 0))
    if message.type == "result":
        return Result(job, a["texture"], f["report"], a.get("preview"), a.get("uvs"), a.get("uv_faces"),
                      f.get("compute_s", 0.0))
    if message.type == "error":
        return Failed(job, f["code"], f["message"], f.get("field", ""))
    if message.type == "cancelled":
        return Cancelled(job, f.get("message", ""))
    return None
