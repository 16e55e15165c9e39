"""One worker process per GPU: loads the models once, runs one job at a time, streams its events.

Threads: the main thread loads the generators and runs jobs (inference). An I/O thread owns
the DEALER socket to the server: it receives jobs and cancels, forwards the events the
inference thread pushes over an inproc pipe, and sends heartbeats every ``--heartbeat``
seconds, so a 30 s diffusion call never looks like a dead worker. A job that raises (out of
memory included) is answered with an error and the worker takes the next one.

Started by the server as ``python -m texgen.server.worker --connect ENDPOINT ...``.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import queue
import sys
import threading
import time
from typing import Any, Optional

import numpy as np
import zmq

from .. import protocol
from ..errors import Cancelled, ConfigError, ImageError, MeshError, OutOfMemoryError
from ..progress import CancelToken, ProgressEvent
from ..protocol import Message
from ..settings import LoadOptions, settings_from_mapping

log = logging.getLogger("texgen.server.worker")
PREVIEW_MAX = 256  # progress previews are shrunk to at most this many pixels a side
EXIT_LOAD_FAILED = 3


class Worker:
    """The state shared by the worker's two threads; see the module docstring."""

    def __init__(self, endpoint: str, identity: str, device: str, index: int, models: list[str],
                 heartbeat_s: float, load_options: LoadOptions) -> None:
        self.endpoint, self.identity, self.device, self.index = endpoint, identity, device, index
        self.models, self.heartbeat_s, self.load_options = models, heartbeat_s, load_options
        self.context = zmq.Context()
        self.pipe = f"inproc://events-{id(self)}"
        self.jobs: "queue.Queue[Optional[Message]]" = queue.Queue()
        self.tokens: dict[str, CancelToken] = {}
        self.lock = threading.Lock()
        self.state = "loading"
        self.current = ""
        self.parent = os.getppid()

    # ------------------------------------------------------------------ inference thread
    def run(self) -> int:
        io = threading.Thread(target=self._io_loop, name="texgen-worker-io", daemon=True)
        io.start()
        self.push = self.context.socket(zmq.PUSH)
        self.push.connect(self.pipe)
        try:
            generators = self._load()
        except Exception as exc:  # a bad --model spec: tell the server, which reports it and stops
            log.exception("loading the models failed")
            self._send(Message("error", fields={"code": protocol.JOB_FAILED,
                                                "message": f"could not load the models: {type(exc).__name__}: {exc}"}))
            self._finish(io)
            return EXIT_LOAD_FAILED
        self.state = "idle"
        self._send(Message("ready", fields={"pid": os.getpid(), "device": self.device, "models": self.models,
                                            "architectures": sorted({_architecture(g) for g in generators.values()})}))
        while (message := self.jobs.get()) is not None:
            self._run_job(message, generators)
        self._finish(io)
        return 0

    def _load(self) -> dict[str, Any]:
        from ..diffusion import load_generator

        self.device = resolve_device(self.device, self.index)
        generators = {}
        for spec in self.models:
            start = time.perf_counter()
            generators[spec] = load_generator(spec, device=self.device, options=self.load_options)
            log.info("%s: loaded %s on %s in %.1f s", self.identity, spec, self.device, time.perf_counter() - start)
        return generators

    def _run_job(self, message: Message, generators: dict[str, Any]) -> None:
        job, start = message.job, time.perf_counter()
        png = message.fields.get("image_encoding") == "png"
        with self.lock:
            token = self.tokens.setdefault(job, CancelToken())
            self.state, self.current = "busy", job
        log.info("%s: job %s (%s) started", self.identity, job, message.type)
        try:
            reply = self._execute(message, generators, token, png)
            outcome = "done"
        except Cancelled:
            reply, outcome = Message("cancelled", job, {"message": "cancelled by request"}), "cancelled"
        except Exception as exc:  # every failure becomes an error reply; the worker goes on
            code, text = _classify(exc)
            if code == protocol.JOB_FAILED:
                log.exception("%s: job %s failed", self.identity, job)
            reply, outcome = Message("error", job, {"code": code, "message": text}), f"failed ({code})"
            _release_memory()
        try:
            frames = protocol.encode(reply, png=png)
        except protocol.ProtocolError as exc:  # the pipeline broke its contract (shape, dtype...)
            log.error("%s: job %s: cannot send the result: %s", self.identity, job, exc)
            frames = protocol.encode(Message("error", job, {"code": protocol.JOB_FAILED,
                                                            "message": f"the server could not send the result: {exc}"}))
            outcome = "failed (result not sendable)"
        with self.lock:
            self.tokens.pop(job, None)
            self.state, self.current = "idle", ""
            self.push.send_multipart(frames, copy=False)
        log.info("%s: job %s %s in %.2f s", self.identity, job, outcome, time.perf_counter() - start)

    def _execute(self, message: Message, generators: dict[str, Any], token: CancelToken, png: bool) -> Message:
        from ..mesh import Mesh

        arrays, job = message.arrays, message.job
        options = dict(message.fields["options"])
        model = options.get("model") or self.models[0]
        if model not in generators:
            raise ConfigError(f"model {model!r} is not served here; served: {', '.join(generators)}")
        options.update(model=model, device=self.device)
        start = time.perf_counter()
        # a texture job's texture frame is the texture to start from (init_texture "mesh"), checked as a mesh's own
        own_texture = arrays.get("texture") if message.type == "texture" else None
        mesh = Mesh.from_arrays(arrays["positions"], arrays["faces"], arrays.get("uvs"), arrays.get("uv_faces"),
                                None if own_texture is None else np.array(own_texture),
                                name=message.fields.get("name") or "mesh", normals=arrays.get("normals"),
                                normal_faces=arrays.get("normal_faces"))  # views of the received frames

        def progress(event: ProgressEvent) -> None:
            self._send(_progress_message(job, event), png)

        if message.type == "texture":
            from ..pipeline import texture_mesh
            from ..settings import TextureSettings

            settings = settings_from_mapping(TextureSettings, options, where="options")
            result = texture_mesh(mesh, settings=settings, generator=generators[model], progress=progress,
                                  cancel=token)
        else:
            from ..seams_repair import SeamSettings, inpaint_seams

            settings = settings_from_mapping(SeamSettings, options, where="options")
            result = inpaint_seams(mesh, np.array(arrays["texture"]), settings=settings,  # alpha marks holes
                                   generator=generators[model], progress=progress, cancel=token)
        compute_s = time.perf_counter() - start
        out = {"texture": result.texture}
        if result.preview is not None:
            out["preview"] = result.preview
        if "uvs" not in arrays and result.mesh.uvs is not None:  # the server made the UV layout
            out["uvs"], out["uv_faces"] = result.mesh.uvs, result.mesh.uv_faces
        return Message("result", job, {"report": _plain(result.report), "compute_s": compute_s}, out)

    def _send(self, message: Message, png: bool = False) -> None:
        with self.lock:
            self.push.send_multipart(protocol.encode(message, png=png), copy=False)

    def _finish(self, io: threading.Thread) -> None:
        self.state = "stopping"
        with self.lock:
            self.push.send(b"")  # tells the I/O thread to flush and exit
        io.join(timeout=10)
        self.push.close(linger=0)
        self.context.term()

    # ------------------------------------------------------------------ I/O thread
    def _io_loop(self) -> None:
        pull = self.context.socket(zmq.PULL)
        pull.bind(self.pipe)
        dealer = self.context.socket(zmq.DEALER)
        dealer.routing_id = self.identity.encode()
        dealer.linger = 2000
        dealer.connect(self.endpoint)
        poller = zmq.Poller()
        poller.register(pull, zmq.POLLIN)
        poller.register(dealer, zmq.POLLIN)
        next_beat = 0.0
        while True:
            now = time.monotonic()
            if now >= next_beat:
                if os.getppid() != self.parent:  # the server is gone: do not linger as an orphan
                    log.error("%s: the server process died; exiting", self.identity)
                    os._exit(1)
                protocol.send(dealer, self._heartbeat())
                next_beat = now + self.heartbeat_s
            ready = dict(poller.poll(max(0.0, next_beat - time.monotonic()) * 1000))
            if pull in ready:
                frames = pull.recv_multipart(copy=False)
                if len(frames) == 1 and not len(frames[0].buffer):
                    break
                dealer.send_multipart(frames, copy=False)
            if dealer in ready:
                self._handle(dealer.recv_multipart(copy=False))
        pull.close(linger=0)
        dealer.close()

    def _handle(self, frames: list) -> None:
        try:
            message = protocol.decode(frames, allowed=("texture", "inpaint_seams", "cancel", "stop"),
                                      check_values=False)  # the server checked the values already
        except protocol.ProtocolError as exc:  # cannot happen with our server; never die of it
            log.error("%s: dropped a malformed message from the server: %s", self.identity, exc)
            return
        if message.type in protocol.JOB_TYPES:
            with self.lock:
                self.tokens[message.job] = CancelToken()
            self.jobs.put(message)
        elif message.type == "cancel":
            with self.lock:
                token = self.tokens.get(message.job)
            if token is not None:
                token.cancel()
        else:
            with self.lock:
                for token in self.tokens.values():
                    token.cancel()
            self.jobs.put(None)

    def _heartbeat(self) -> Message:
        fields: dict[str, Any] = {"state": self.state}
        memory = _gpu_memory(self.device)
        if memory:
            fields["memory"] = memory
        return Message("heartbeat", self.current, fields)


def _progress_message(job: str, event: ProgressEvent) -> Message:
    arrays = {}
    if event.preview is not None:
        preview = np.asarray(event.preview)
        if preview.ndim == 3 and preview.shape[2] >= 3 and preview.dtype == np.uint8:
            stride = max(1, -(-max(preview.shape[:2]) // PREVIEW_MAX))
            arrays["preview"] = np.ascontiguousarray(preview[::stride, ::stride, :3])
    return Message("progress", job, {"stage": str(event.stage), "view": int(event.view), "views": int(event.views),
                                     "step": int(event.step), "steps": int(event.steps),
                                     "message": str(event.message), "sent_at": time.time()}, arrays)


def _classify(exc: BaseException) -> tuple[str, str]:
    """(error code, message for a person) for an exception a job raised."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, (OutOfMemoryError, MemoryError)) or type(exc).__name__ == "OutOfMemoryError":
        return protocol.OUT_OF_MEMORY, (f"out of memory: {text}" if "memory" not in text.lower() else text) + \
            " (try a smaller view_size, texture_size or fewer views)"
    if isinstance(exc, ConfigError):
        return protocol.INVALID_OPTIONS, text
    if isinstance(exc, (MeshError, ImageError)):
        return protocol.INVALID_INPUT, text
    return protocol.JOB_FAILED, f"{type(exc).__name__}: {text}"


def _release_memory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _gpu_memory(device: str) -> dict[str, int]:
    torch = sys.modules.get("torch")
    if not device.startswith("cuda") or torch is None or not torch.cuda.is_available():
        return {}
    free, total = torch.cuda.mem_get_info(torch.device(device))
    return {"free": int(free), "total": int(total), "allocated": int(torch.cuda.memory_allocated(device))}


def resolve_device(device: str, index: int) -> str:
    """The torch device of worker ``index``: auto picks GPU index % count, else mps, else cpu."""
    if device not in ("auto", "cuda"):
        return device
    import torch

    if torch.cuda.is_available():
        return f"cuda:{index % torch.cuda.device_count()}"
    if device == "cuda":
        raise ConfigError(f"--device cuda: no CUDA device is visible to worker {index}")
    return "mps" if torch.backends.mps.is_available() else "cpu"


def _architecture(generator: Any) -> str:
    """The registry name of a diffusers generator ("sd15-controlnet"...), or "oracle"."""
    return str(getattr(generator, "arch", "") or str(getattr(generator, "name", "")).split(":")[0]
               or type(generator).__name__)


def _plain(value: Any) -> Any:
    """The report as plain msgpack-able data (numpy scalars and arrays become numbers and lists)."""
    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m texgen.server.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--connect", required=True, help="the server's worker endpoint")
    parser.add_argument("--identity", required=True)
    parser.add_argument("--device", default="auto", help="auto, cpu, mps, cuda or cuda:N")
    parser.add_argument("--index", type=int, default=0, help="this worker's number; picks the GPU for auto/cuda")
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--heartbeat", type=float, default=1.0)
    parser.add_argument("--load-options", type=json.loads, default={}, help="LoadOptions as a JSON object")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format=f"%(asctime)s %(levelname)s {args.identity}[%(process)d]: %(message)s")
    load_options = settings_from_mapping(LoadOptions, args.load_options, where="--load-options")
    return Worker(args.connect, args.identity, args.device, args.index, args.model, args.heartbeat,
                  load_options).run()


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    os._exit(code)  # skip the interpreter's slow teardown of torch; nothing is left to flush
