"""Where a batch's texturing runs: in this process, on texgen servers, or on a Ray cluster.

Every executor takes :class:`Task` objects and returns, per task, a ``concurrent.futures.Future``
of the :class:`~texgen.result.TextureResult`. The runner writes the outputs and the ledger
itself, so all executors give the same files and the same ledger.

A future that fails with :class:`WorkerLost` means the worker died, not the asset: the runner
gives the asset to another worker.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, Optional, Protocol

from ..errors import ConfigError, TexgenError
from ..progress import CancelToken
from ..result import TextureResult
from ..settings import LoadOptions, TextureSettings

log = logging.getLogger(__name__)

RAY_INSTALL_HINT = "pip install texgen[ray]"


@dataclass(frozen=True)
class Task:
    """One asset to texture: its ledger key, its mesh file and its resolved settings."""

    key: str
    source: Path
    settings: TextureSettings


class WorkerLost(TexgenError):
    """The worker running a task died or became unreachable; the task itself may be fine."""


class Executor(Protocol):
    """Runs tasks; ``slots`` tasks may be in flight at once."""

    name: str

    @property
    def slots(self) -> int: ...

    def submit(self, task: Task) -> "Future[TextureResult]": ...

    def worker_of(self, future: "Future[TextureResult]") -> str: ...

    def close(self) -> None: ...


class LocalExecutor:
    """In this process, one asset at a time, the model loaded once (load_generator's cache).

    Texturing runs in a worker thread, so the runner writes one asset's outputs while the
    next is being painted.
    """

    name = "local"

    def __init__(self, load_options: Optional[LoadOptions] = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="texgen-local")
        self._cancel = CancelToken()
        self._load_options = load_options

    @property
    def slots(self) -> int:
        return 1

    def submit(self, task: Task) -> "Future[TextureResult]":
        from ..pipeline import texture_mesh

        return self._pool.submit(texture_mesh, task.source, settings=task.settings, cancel=self._cancel,
                                 load_options=self._load_options)

    def worker_of(self, future: "Future[TextureResult]") -> str:
        return "local"

    def close(self) -> None:
        self._cancel.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)


class ServerExecutor:
    """Spread tasks over running `texgen serve` servers with the client (texgen.client_jobs).

    Each server gets as many tasks in flight as it has workers. A server that stops answering is
    dropped and its tasks go back to the runner (WorkerLost); when none is left, submit raises.
    """

    name = "server"

    def __init__(self, addresses: list[str], *, server_key: Optional[Path] = None, client_key: Optional[Path] = None,
                 timeout: float = 10.0) -> None:
        if not addresses:
            raise ConfigError("--executor server needs at least one --server ADDRESS")
        self._keys = {"server_key": server_key, "client_key": client_key}
        self._timeout = timeout
        self._capacity = {address: self._probe(address, fatal=True) for address in dict.fromkeys(addresses)}
        self._busy = dict.fromkeys(self._capacity, 0)
        self._where: dict[Future, str] = {}
        self._lock = threading.Lock()
        self._cancel = CancelToken()
        self._pool = ThreadPoolExecutor(max_workers=sum(self._capacity.values()), thread_name_prefix="texgen-server")

    def _probe(self, address: str, fatal: bool = False) -> int:
        """The server's worker count; 0 when it does not answer (TexgenError when ``fatal``)."""
        from .. import client as remote

        try:
            with remote.Client(address, server_public_key=self._keys["server_key"],
                               client_keys=self._keys["client_key"], timeout=self._timeout, retries=1) as client:
                return max(1, len(client.status().get("workers", [])))
        except (remote.ClientError, remote.ProtocolError) as exc:
            if fatal:
                raise TexgenError(f"the server at {address} does not answer: {exc}") from None
            return 0

    @property
    def slots(self) -> int:
        return sum(self._capacity.values())

    def submit(self, task: Task) -> "Future[TextureResult]":
        with self._lock:
            free = [a for a, n in self._capacity.items() if n and self._busy[a] < n]
            if not free:
                raise TexgenError("no texgen server is left to run the batch; check the servers and run the "
                                  "same command again to resume")
            address = min(free, key=lambda a: self._busy[a] / self._capacity[a])
            self._busy[address] += 1
        future = self._pool.submit(self._run, address, task)
        self._where[future] = address
        future.add_done_callback(lambda _: self._release(address))
        return future

    def _release(self, address: str) -> None:
        with self._lock:
            self._busy[address] -= 1

    def _run(self, address: str, task: Task) -> TextureResult:
        from ..client_jobs import run_remote
        from ..errors import Cancelled, ConfigError as BadOptions, JobLost, MeshError

        try:
            return run_remote(address, task.source, task.settings, cancel=self._cancel, timeout=self._timeout,
                              **self._keys)
        except (MeshError, BadOptions, Cancelled):
            raise
        except JobLost as exc:  # the server answers but dropped the job: the asset goes back in the queue
            raise WorkerLost(str(exc)) from None
        except TexgenError:
            if self._probe(address):
                raise
            with self._lock:
                self._capacity[address] = 0
            log.warning("the server at %s stopped answering; its assets go to the other servers", address)
            raise WorkerLost(f"the server at {address} stopped answering") from None

    def worker_of(self, future: "Future[TextureResult]") -> str:
        return self._where.pop(future, "")

    def close(self) -> None:
        self._cancel.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)


START_FILE = ".texgen-start"  # the name under which a task's starting texture image travels to a worker


def task_files(task: Task) -> dict[str, bytes]:
    """What a worker on another machine needs to read ``task`` as this one does, by path relative to the
    mesh's folder: the mesh file, the files it reads (an OBJ's materials and maps, a .gltf's buffers and
    images: :func:`texgen.mesh.companion_files`) and, as START_FILE, a starting texture image."""
    from ..mesh import companion_files

    folder = task.source.parent
    files = {name: (folder / name).read_bytes() for name in [task.source.name, *companion_files(task.source)]}
    if task.settings.init_texture not in ("", "mesh"):
        files[START_FILE] = Path(task.settings.init_texture).read_bytes()
    return files


class TextureWorker:
    """The body of a Ray actor: textures meshes sent as file bytes (:func:`task_files`), its model kept
    warm between tasks."""

    def __init__(self, load_options: Optional[LoadOptions] = None) -> None:
        self.load_options = load_options

    def texture(self, filename: str, files: dict[str, bytes], settings: TextureSettings) -> TextureResult:
        from ..pipeline import texture_mesh

        with tempfile.TemporaryDirectory(prefix="texgen-ray-") as root:
            # a map in "../textures" needs the mesh that many folders down
            depth = max(PurePosixPath(name).parts.count("..") for name in files)
            folder = Path(root, *["mesh"] * depth)
            for name, data in files.items():
                path = (folder / name).resolve()
                if not path.is_relative_to(Path(root).resolve()):
                    raise ConfigError(f"{filename}: the file {name!r} it reads lies outside the folders sent")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            if START_FILE in files:
                settings = replace(settings, init_texture=str(folder / START_FILE))
            return texture_mesh(folder / filename, settings=settings, load_options=self.load_options)


def import_ray() -> Any:
    """The ray module, or a ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--executor ray needs Ray: {RAY_INSTALL_HINT}") from None
    return ray


class RayExecutor:
    """One Ray actor per worker (per GPU when the cluster has GPUs), each keeping its model warm.

    address : ``auto`` or ``ray://HOST:PORT`` to join a cluster; None starts (or reuses) a local
        Ray instance. Meshes travel as file bytes, with the files they read (:func:`task_files`), and
        results come back through Ray, so workers need no shared file system.
    workers : actors to start; default one per GPU, or 2 on a cluster without GPUs
    load_options : how each actor loads its model
    """

    name = "ray"

    def __init__(self, address: Optional[str] = None, workers: Optional[int] = None,
                 load_options: Optional[LoadOptions] = None) -> None:
        ray = import_ray()
        self._ray = ray
        self._owns_ray = not ray.is_initialized()  # then close() shuts down the Ray this started or joined
        if self._owns_ray:
            ray.init(address=address, log_to_driver=False)
        gpus = float(ray.cluster_resources().get("GPU", 0))
        count = workers or (int(gpus) if gpus >= 1 else 2)
        if count < 1:
            raise ConfigError(f"--ray-workers: must be at least 1, got {count}")
        per_actor = {"num_gpus": min(1.0, gpus / count)} if gpus else {"num_cpus": 1}
        actor_class = ray.remote(max_restarts=2, max_task_retries=0, **per_actor)(TextureWorker)
        self._actors = [actor_class.remote(load_options) for _ in range(count)]
        self._busy = [0] * count
        self._names = [f"ray-{index}" for index in range(count)]
        self._where: dict[Future, int] = {}
        self._lock = threading.Lock()

    @property
    def slots(self) -> int:
        return len(self._actors)

    def submit(self, task: Task) -> "Future[TextureResult]":
        with self._lock:
            index = min(range(len(self._actors)), key=self._busy.__getitem__)
            self._busy[index] += 1
        ref = self._actors[index].texture.remote(task.source.name, task_files(task), task.settings)
        future: Future[TextureResult] = Future()
        self._where[future] = index

        def settle(done: Future) -> None:
            with self._lock:
                self._busy[index] -= 1
            try:
                future.set_result(done.result())
            except self._ray.exceptions.RayActorError as exc:
                future.set_exception(WorkerLost(f"Ray worker {self._names[index]} died: {exc}"))
            except self._ray.exceptions.RayTaskError as exc:
                future.set_exception(exc.cause if isinstance(exc.cause, BaseException) else exc)
            except BaseException as exc:  # noqa: BLE001 - handed to the runner, which records it
                future.set_exception(exc)

        ref.future().add_done_callback(settle)
        return future

    def worker_of(self, future: "Future[TextureResult]") -> str:
        index = self._where.pop(future, None)
        return "" if index is None else self._names[index]

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors = []
        if self._owns_ray:
            self._ray.shutdown()


def make_executor(kind: str, *, servers: Optional[list[str]] = None, server_key: Optional[Path] = None,
                  client_key: Optional[Path] = None, server_timeout: float = 10.0, ray_address: Optional[str] = None,
                  ray_workers: Optional[int] = None, load_options: Optional[LoadOptions] = None) -> Executor:
    """The executor named ``kind`` (local, server or ray), checking that its options fit.

    ``load_options`` are for the models loaded here or on Ray; servers load theirs with their own.
    """
    if kind != "server" and servers:
        raise ConfigError("--server needs --executor server")
    if kind != "ray" and (ray_address or ray_workers):
        raise ConfigError("--ray-address and --ray-workers need --executor ray")
    if kind == "local":
        return LocalExecutor(load_options)
    if kind == "server":
        return ServerExecutor(servers or [], server_key=server_key, client_key=client_key, timeout=server_timeout)
    if kind == "ray":
        return RayExecutor(ray_address, ray_workers, load_options)
    raise ConfigError(f"--executor: expected local, server or ray, got {kind!r}")


__all__ = ["Task", "WorkerLost", "Executor", "LocalExecutor", "ServerExecutor", "RayExecutor", "TextureWorker",
           "make_executor", "import_ray", "task_files"]
