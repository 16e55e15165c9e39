"""The texgen server: a ROUTER for clients, a ROUTER for the worker processes, a fair job queue.

One thread runs a poll loop with a short tick. Client messages are validated (a malformed one
gets an error reply naming the field and changes nothing), jobs queue fairly between clients and
go to idle workers; worker events are forwarded to the job's client verbatim (zero-copy). Each
tick sends heartbeats for quiet jobs, cancels the jobs of clients that went silent, and restarts
workers that died or hung (failing only their job). SIGTERM cancels running jobs, answers queued
ones with an error, stops the workers and closes the sockets.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import zmq

from .. import __version__ as TEXGEN_VERSION
from .. import protocol
from ..errors import ConfigError
from ..protocol import Limits, Message, ProtocolError
from ..settings import DEFAULT_MODEL, LoadOptions
from .auth import resolve_security
from .jobs import FairQueue, Job, client_tag

log = logging.getLogger("texgen.server")
TICK_S = 0.05
BATCH = 64  # messages handled per socket per loop turn, so neither side starves the other


@dataclass
class ServerConfig:
    """Everything `texgen serve` can set. ``bind`` may use port ``*`` for a free port."""

    bind: str = "tcp://127.0.0.1:5555"
    workers: int = 1
    models: list[str] = field(default_factory=lambda: [DEFAULT_MODEL])
    device: str = "auto"
    load_options: LoadOptions = field(default_factory=LoadOptions)  # every worker loads every model with these
    limits: Limits = field(default_factory=Limits)
    keys_dir: Optional[Path] = None
    allow_dir: Optional[Path] = None
    insecure: bool = False
    heartbeat_s: float = 1.0
    client_timeout_s: float = 15.0
    worker_timeout_s: float = 60.0
    shutdown_grace_s: float = 10.0


@dataclass
class WorkerSlot:
    """One worker process and what the server knows about it."""

    index: int
    generation: int = 0
    process: Optional[subprocess.Popen] = None
    state: str = "dead"  # starting | idle | busy | dead
    job: Optional[Job] = None
    device: str = ""
    architectures: list = field(default_factory=list)
    memory: dict = field(default_factory=dict)
    last_seen: float = 0.0
    ever_ready: bool = False
    restarts: int = 0
    restart_at: float = 0.0
    load_error: str = ""

    @property
    def identity(self) -> bytes:
        return f"worker-{self.index}-{self.generation}".encode()


class Server:
    """Binds at construction; :meth:`serve_forever` runs until :meth:`stop` or SIGTERM."""

    def __init__(self, config: ServerConfig) -> None:
        if config.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {config.workers}")
        if not config.models:
            raise ConfigError("give at least one --model")
        self.config = config
        self.security = resolve_security(config.bind, config.keys_dir, config.allow_dir, config.insecure)
        self.context = zmq.Context()
        self.frontend = self.context.socket(zmq.ROUTER)
        self.frontend.router_handover = 1  # a client that reconnects keeps its jobs' events
        self.frontend.maxmsgsize = 2 * config.limits.max_message_bytes  # hard cap; the limit itself gets a reply
        self.frontend.linger = 1000
        self.authenticator = self.security.apply(self.context, self.frontend)
        try:
            self.frontend.bind(config.bind)
        except zmq.ZMQError as exc:
            self._close_sockets()
            raise ConfigError(f"cannot listen on {config.bind}: {exc} (is another `texgen serve` running "
                              "there? pick another port with --bind)") from None
        self.address = self.frontend.last_endpoint.decode()
        self._tempdir = tempfile.TemporaryDirectory(prefix="texgen-serve-")
        self.backend = self.context.socket(zmq.ROUTER)
        self.backend.linger = 0
        if zmq.has("ipc"):
            self.backend.bind(f"ipc://{self._tempdir.name}/workers")
        else:
            self.backend.bind("tcp://127.0.0.1:*")
        self.backend_address = self.backend.last_endpoint.decode()
        self.queue = FairQueue()
        self.jobs: dict[str, Job] = {}
        self.clients: dict[bytes, float] = {}
        self.slots = [WorkerSlot(i) for i in range(config.workers)]
        self.exit_code = 0
        self._stop = threading.Event()
        self._stopping = False
        self._next_beat = 0.0
        log.info("texgen server listening on %s (%s), %d worker(s), models %s", self.address,
                 "CURVE" if self.security.mode == "curve" else "no authentication", config.workers,
                 ", ".join(config.models))

    # ------------------------------------------------------------------ lifecycle
    def stop(self) -> None:
        """Ask the loop to shut down (thread-safe; SIGTERM and SIGINT do the same)."""
        self._stop.set()

    def serve_forever(self) -> int:
        """Run until stopped; return the exit code (2 when the workers could not load the models)."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self._stop.set())
        for slot in self.slots:
            self._start_worker(slot)
        poller = zmq.Poller()
        poller.register(self.frontend, zmq.POLLIN)
        poller.register(self.backend, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                self._poll_once(poller)
            self._shutdown(poller)
        finally:
            for slot in self.slots:  # only left running if the loop itself failed
                if slot.process is not None and slot.process.poll() is None:
                    slot.process.kill()
                    slot.process.wait()
            self._close_sockets()
        return self.exit_code

    def _poll_once(self, poller: zmq.Poller) -> None:
        ready = dict(poller.poll(TICK_S * 1000))
        if self.frontend in ready:  # while stopping too: heartbeats keep clients alive, new jobs are refused
            self._drain(self.frontend, self._on_client)
        if self.backend in ready:
            self._drain(self.backend, self._on_worker)
        self._tick()

    @staticmethod
    def _drain(socket: zmq.Socket, handler: Callable[[list], None]) -> None:
        for _ in range(BATCH):
            try:
                frames = socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            handler(frames)

    def _shutdown(self, poller: zmq.Poller) -> None:
        self._stopping = True
        queued = self.queue.order()
        running = [job for job in self.jobs.values() if job.worker is not None]
        log.info("shutting down: answering %d queued job(s), cancelling %d running", len(queued), len(running))
        for job in queued:
            self.queue.remove(job.id)
            self._finish(job, self._error(job.id, protocol.SHUTTING_DOWN,
                                          "the server is shutting down; submit the job again when it is back"))
        for job in running:
            self._cancel_running(job)
        deadline = time.monotonic() + self.config.shutdown_grace_s
        while any(job.worker is not None for job in self.jobs.values()) and time.monotonic() < deadline:
            self._poll_once(poller)
        for job in list(self.jobs.values()):
            self._finish(job, self._error(job.id, protocol.SHUTTING_DOWN, "the server shut down before the job "
                                                                          "stopped"))
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is None:
                protocol.send(self.backend, Message("stop"), prefix=[slot.identity])
        for slot in self.slots:
            if slot.process is not None:
                try:
                    slot.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    log.warning("worker %d did not stop; killing it", slot.index)
                    slot.process.kill()
                    slot.process.wait()
        log.info("server stopped")

    def _close_sockets(self) -> None:
        for socket in (getattr(self, "frontend", None), getattr(self, "backend", None)):
            if socket is not None:
                socket.close()
        if getattr(self, "authenticator", None) is not None:
            self.authenticator.stop()
        self.context.term()
        if getattr(self, "_tempdir", None) is not None:
            self._tempdir.cleanup()

    # ------------------------------------------------------------------ clients
    def _on_client(self, frames: list) -> None:
        identity, body = frames[0].bytes, frames[1:]
        self.clients[identity] = time.monotonic()
        try:
            message = protocol.decode(body, allowed=protocol.CLIENT_TYPES)
        except ProtocolError as exc:
            job = _job_id_of(body)
            log.warning("client %s: refused a malformed message%s: %s", client_tag(identity),
                        f" for job {job}" if job else "", exc)
            self._reply(identity, self._error(job, exc.code, str(exc), exc.field))
            return
        kind = message.type
        if kind == "hello":
            self._reply(identity, self._welcome())
        elif kind == "ping":
            self._reply(identity, Message("pong"))
        elif kind == "status":
            self._reply(identity, self._status())
        elif kind == "cancel":
            self._cancel(identity, message.job)
        elif kind in protocol.JOB_TYPES:
            self._submit(identity, message, body)

    def _submit(self, identity: bytes, message: Message, body: list) -> None:
        job_id = message.job
        existing = self.jobs.get(job_id)
        if existing is not None:  # a Lazy-Pirate retry of a job we already have: same answer again
            if existing.client == identity:
                self._reply(identity, Message("accepted", job_id, {"position": self.queue.position(job_id)}))
            else:
                self._reply(identity, self._error(job_id, protocol.DUPLICATE_JOB,
                                                  f"job id {job_id} is in use; use a fresh id", "job"))
            return
        try:
            if self._stopping:
                raise ProtocolError("the server is shutting down; try again when it is back",
                                    code=protocol.SHUTTING_DOWN)
            size = protocol.message_size(body)
            protocol.check_limits(message, self.config.limits, size)
            self._check_options(message)
            if len(self.queue) >= self.config.limits.max_queue:
                raise ProtocolError(f"the queue is full ({self.config.limits.max_queue} jobs, the server's "
                                    "--max-queue): try again when some have finished", code=protocol.QUEUE_FULL)
        except ProtocolError as exc:
            log.warning("job %s from %s refused: %s", job_id, client_tag(identity), exc)
            self._reply(identity, self._error(job_id, exc.code, str(exc), exc.field))
            return
        job = Job(job_id, identity, message, body[1:], protocol.decode_header(body[0])["frames"])
        self.jobs[job_id] = job
        self.queue.push(job)
        log.info("job %s from %s queued: %s, %d faces, %.1f MiB", job_id, job.client_tag, job.kind,
                 len(message.arrays["faces"]), size / 2**20)
        self._dispatch()
        self._reply(identity, Message("accepted", job_id, {"position": self.queue.position(job_id)}))

    def _check_options(self, message: Message) -> None:
        """Fill in the default model and validate texture options now, before any GPU time."""
        options = message.fields["options"]
        model = options.setdefault("model", self.config.models[0])
        if model not in self.config.models:
            raise ProtocolError(f"options.model: {model!r} is not served here; served: "
                                f"{', '.join(self.config.models)}", code=protocol.UNKNOWN_MODEL,
                                field="options.model")
        if message.type == "texture":
            from ..settings import TextureSettings, settings_from_mapping

            try:
                settings_from_mapping(TextureSettings, options, where="options")
            except ConfigError as exc:
                raise ProtocolError(str(exc), code=protocol.INVALID_OPTIONS, field="options") from None
            start, sent = options.get("init_texture", ""), "texture" in message.arrays
            if start not in ("", "mesh") or sent != (start == "mesh"):
                raise ProtocolError("options.init_texture: a starting texture travels as the job's texture frame, "
                                    f"with init_texture = \"mesh\"; got init_texture {start!r} "
                                    f"{'with' if sent else 'without'} a texture frame",
                                    code=protocol.INVALID_OPTIONS, field="options.init_texture")

    def _cancel(self, identity: bytes, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is None or job.client != identity:
            self._reply(identity, self._error(job_id, protocol.UNKNOWN_JOB, f"no job {job_id} from this client is "
                                              "queued or running (it may have finished already)", "job"))
        elif job.worker is None:
            self.queue.remove(job_id)
            self._finish(job, Message("cancelled", job_id, {"message": "cancelled while queued"}))
        else:
            self._cancel_running(job)

    def _cancel_running(self, job: Job) -> None:
        if not job.cancelling:
            job.cancelling = True
            log.info("job %s: cancelling on worker %d", job.id, job.worker)
            protocol.send(self.backend, Message("cancel", job.id), prefix=[self.slots[job.worker].identity])

    def _reply(self, identity: bytes, message: Message) -> None:
        protocol.send(self.frontend, message, prefix=[identity])

    @staticmethod
    def _error(job: str, code: str, text: str, field_name: str = "") -> Message:
        fields = {"code": code, "message": text}
        if field_name:
            fields["field"] = field_name
        return Message("error", job, fields)

    def _finish(self, job: Job, message: Message) -> None:
        """Send the terminal message of a job that is not on a worker, and forget the job."""
        self.jobs.pop(job.id, None)
        self._reply(job.client, message)
        log.info("job %s: %s after %.2f s", job.id, message.fields.get("code", message.type),
                 time.monotonic() - job.submitted)

    # ------------------------------------------------------------------ replies with state
    def _welcome(self) -> Message:
        ready = [s for s in self.slots if s.device]
        return Message("welcome", fields={
            "protocol": protocol.PROTOCOL_VERSION, "texgen": TEXGEN_VERSION, "models": list(self.config.models),
            "architectures": sorted({a for s in ready for a in s.architectures}),
            "device": ", ".join(sorted({s.device for s in ready})) or f"{self.config.device} (workers starting)",
            "workers": len(self.slots), "limits": self.config.limits.to_dict(), "auth": self.security.mode,
            "heartbeat_s": self.config.heartbeat_s, "client_timeout_s": self.config.client_timeout_s})

    def _status(self) -> Message:
        now = time.monotonic()
        jobs = []
        for job in self.jobs.values():
            entry = {"job": job.id, "client": job.client_tag, "kind": job.kind,
                     "state": "running" if job.worker is not None else "queued",
                     "position": self.queue.position(job.id), "waited_s": round((job.started or now) - job.submitted, 3),
                     "progress": dict(job.progress)}
            if job.worker is not None:
                entry.update(worker=job.worker, elapsed_s=round(now - job.started, 3))
            jobs.append(entry)
        jobs.sort(key=lambda e: (e["state"] != "running", e["position"]))
        workers = [{"index": s.index, "pid": s.process.pid if s.process else 0, "device": s.device, "state": s.state,
                    "job": s.job.id if s.job else "", "memory": dict(s.memory), "restarts": s.restarts}
                   for s in self.slots]
        return Message("status_reply", fields={"jobs": jobs, "workers": workers,
                                                "limits": self.config.limits.to_dict()})

    # ------------------------------------------------------------------ workers
    def _start_worker(self, slot: WorkerSlot) -> None:
        slot.generation += 1
        cmd = [sys.executable, "-m", "texgen.server.worker", "--connect", self.backend_address,
               "--identity", slot.identity.decode(), "--device", self.config.device, "--index", str(slot.index),
               "--heartbeat", str(self.config.heartbeat_s),
               "--load-options", json.dumps(self.config.load_options.to_dict())]
        for model in self.config.models:
            cmd += ["--model", model]
        if log.isEnabledFor(logging.DEBUG):
            cmd.append("--verbose")
        slot.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        slot.state, slot.job, slot.last_seen, slot.load_error = "starting", None, time.monotonic(), ""
        log.info("worker %d starting (pid %d)", slot.index, slot.process.pid)

    def _on_worker(self, frames: list) -> None:
        identity = frames[0].bytes
        slot = next((s for s in self.slots if s.identity == identity and s.state != "dead"), None)
        if slot is None:
            return  # a message from a worker generation that was already replaced
        slot.last_seen = time.monotonic()
        try:
            header = protocol.decode_header(frames[1])
        except ProtocolError as exc:
            log.error("worker %d sent a malformed message: %s", slot.index, exc)
            return
        kind, job_id, fields = header["type"], header["job"], header["fields"]
        if kind == "heartbeat":
            slot.memory = fields.get("memory", {}) if isinstance(fields.get("memory"), dict) else {}
        elif kind == "ready":
            slot.state, slot.ever_ready = "idle", True
            slot.device, slot.architectures = str(fields.get("device", "")), list(fields.get("architectures", []))
            log.info("worker %d ready on %s (pid %s)", slot.index, slot.device, fields.get("pid"))
            self._dispatch()
        elif kind == "error" and not job_id:
            slot.load_error = str(fields.get("message", ""))
            log.error("worker %d: %s", slot.index, slot.load_error)
        elif slot.job is not None and job_id == slot.job.id:
            job = slot.job
            job.last_sent = time.monotonic()
            if kind == "progress":
                job.progress = {k: fields.get(k) for k in ("stage", "view", "views", "step", "steps")}
            self.frontend.send_multipart([job.client, *frames[1:]], copy=False)
            if kind in protocol.TERMINAL_TYPES:
                self.jobs.pop(job.id, None)
                slot.job, slot.state = None, "idle"
                log.info("job %s: %s on worker %d after %.2f s (waited %.2f s)", job.id,
                         fields.get("code", kind), slot.index, time.monotonic() - job.started,
                         job.started - job.submitted)
                self._dispatch()

    def _dispatch(self) -> None:
        for slot in self.slots:
            if slot.state != "idle" or self._stopping:
                continue
            job = self.queue.pop()
            if job is None:
                return
            job.worker, job.started, job.last_sent = slot.index, time.monotonic(), time.monotonic()
            slot.job, slot.state = job, "busy"
            header = protocol.encode_header(Message(job.kind, job.id, job.message.fields), job.table)
            self.backend.send_multipart([slot.identity, header, *job.frames], copy=False)  # zero-copy hand-off
            self._reply(job.client, Message("heartbeat", job.id, {"state": "running", "position": 0}))
            log.info("job %s started on worker %d after %.2f s in the queue", job.id, slot.index,
                     job.started - job.submitted)

    def _worker_exited(self, slot: WorkerSlot, code: int) -> None:
        job, slot.job, slot.state = slot.job, None, "dead"
        how = (f"was killed by signal {-code} (by hand, or out of host memory?)" if code < 0
               else f"exited with code {code}")
        if job is not None:
            self._finish(job, self._error(job.id, protocol.WORKER_DIED, f"the worker running this job {how}; "
                                          "the server restarts it: submit the job again"))
        if self._stopping:
            return
        if not slot.ever_ready:
            log.error("worker %d %s before it was ready%s; stopping the server", slot.index, how,
                      f": {slot.load_error}" if slot.load_error else "")
            self.exit_code = 2
            self._stop.set()
            return
        slot.restarts += 1
        delay = min(30.0, 0.5 * 2 ** (slot.restarts - 1))
        slot.restart_at = time.monotonic() + delay
        log.warning("worker %d %s%s; restarting it in %.1f s", slot.index, how,
                    f" during job {job.id}" if job else "", delay)

    # ------------------------------------------------------------------ housekeeping
    def _tick(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            code = slot.process.poll() if slot.process is not None and slot.state != "dead" else None
            if code is not None:
                self._worker_exited(slot, code)
            elif slot.state in ("idle", "busy", "starting") and now - slot.last_seen > self.config.worker_timeout_s:
                log.error("worker %d sent nothing for %.0f s; killing it", slot.index, now - slot.last_seen)
                slot.process.kill()
                slot.last_seen = now
            elif slot.state == "dead" and not self._stopping and slot.ever_ready and now >= slot.restart_at:
                self._start_worker(slot)
        for client, seen in list(self.clients.items()):
            if now - seen <= self.config.client_timeout_s:
                continue
            del self.clients[client]
            mine = [job for job in self.jobs.values() if job.client == client]
            if mine:
                log.warning("client %s silent for %.0f s; cancelling its %d job(s)", client_tag(client), now - seen,
                            len(mine))
            for job in mine:
                if job.worker is None:
                    self.queue.remove(job.id)
                    self._finish(job, Message("cancelled", job.id, {"message": "the client went away"}))
                else:
                    self._cancel_running(job)
        if now >= self._next_beat:
            self._next_beat = now + self.config.heartbeat_s / 2
            for job in self.jobs.values():
                if now - job.last_sent >= self.config.heartbeat_s:
                    job.last_sent = now
                    state = "running" if job.worker is not None else "queued"
                    self._reply(job.client, Message("heartbeat", job.id, {
                        "state": state, "position": self.queue.position(job.id)}))
        self._dispatch()


def _job_id_of(body: list) -> str:
    """The job id of a message that failed validation, when its header is readable (for matching)."""
    try:
        job = protocol.decode_header(body[0])["job"] if body else ""
    except ProtocolError:
        return ""
    return job if protocol.JOB_ID.fullmatch(job) else ""


def run(config: ServerConfig) -> int:
    """Run a server until SIGTERM/SIGINT; the `texgen serve` entry point."""
    return Server(config).serve_forever()

