"""The Ray and server executors give the same outputs and ledger as the local one.

Ray runs on a local instance (``ray.init(num_cpus=2)``, two actors); the server executor runs
against two `texgen serve` subprocesses on loopback. Both use the oracle generator.
"""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from rich.console import Console
from test_batch import CRATE, SMALL, VASE, albedo, crate_folder, oracle

from texgen.batch.executors import (Executor, LocalExecutor, RayExecutor, ServerExecutor, Task, TextureWorker,
                                    WorkerLost, make_executor, task_files)
from texgen.batch.ledger import LEDGER_NAME, Ledger
from texgen.batch.runner import run_batch
from texgen.batch.sources import BatchSource
from texgen.errors import ConfigError, TexgenError
from texgen.settings import TextureSettings

COUNT = 4
BROKEN = "shelf1/broken.obj"
BROKEN_ERROR = "broken.obj: the file contains no triangle mesh"


def quiet() -> Console:
    return Console(file=io.StringIO())


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, TextureSettings]:
    """SRC with COUNT crates and a corrupt mesh, and DST of a local run."""
    root = tmp_path_factory.mktemp("executors")
    src = crate_folder(root / "src", COUNT)
    (src / BROKEN).write_text("not a mesh\n")
    defaults = TextureSettings(prompt="{stem}, weathered", model=oracle(CRATE), **SMALL)
    summary = run_batch(BatchSource(src, root / "local", defaults), LocalExecutor, console=quiet(), command="test")
    assert (summary.done, summary.failures) == (COUNT, [(BROKEN, BROKEN_ERROR)])
    return src, root / "local", defaults


def run_and_compare(reference: tuple[Path, Path, TextureSettings], dst: Path,
                    make: Callable[[], Executor]) -> dict[str, str]:
    """Run the batch into ``dst`` with ``make``; check outputs and ledger equal the local run's;
    return the worker of each asset."""
    src, local, defaults = reference
    summary = run_batch(BatchSource(src, dst, defaults), make, console=quiet(), command="test")
    assert (summary.done, summary.failures) == (COUNT, [(BROKEN, BROKEN_ERROR)])
    with Ledger(dst / LEDGER_NAME, readonly=True) as ledger:
        rows = {row.key: row for row in ledger.rows()}
    with Ledger(local / LEDGER_NAME, readonly=True) as ledger:
        expected = {row.key: row for row in ledger.rows()}
    assert rows.keys() == expected.keys()
    for key, row in rows.items():
        assert (row.state, row.error, row.input_sha256, row.options_sha256) == (
            expected[key].state, expected[key].error, expected[key].input_sha256, expected[key].options_sha256)
        if row.state == "done":
            np.testing.assert_array_equal(albedo(dst, key), albedo(local, key), err_msg=key)
    return {key: row.worker for key, row in rows.items() if row.state == "done"}


def test_a_ray_worker_gets_the_files_a_mesh_reads(tmp_path: Path) -> None:
    """A Ray worker may run on another machine: the mesh travels with its buffers, materials and maps,
    and a starting texture image, and reads as it does here."""
    import trimesh

    from texgen.pipeline import texture_mesh

    gltf = tmp_path / "gltf"  # a .gltf whose buffers lie beside it
    gltf.mkdir()
    for name, data in trimesh.load(VASE).export(file_type="gltf").items():
        (gltf / name).write_bytes(data)
    nested = tmp_path / "obj" / "meshes"  # an OBJ whose map lies in a folder beside its own
    nested.mkdir(parents=True)
    (nested / "crate.obj").write_bytes(CRATE.read_bytes())
    (nested / "crate.mtl").write_text(CRATE.with_suffix(".mtl").read_text().replace(
        "map_Kd crate_albedo.png", "map_Kd -s 1 1 1 ../textures/crate_albedo.png"))
    (tmp_path / "obj" / "textures").mkdir()
    (tmp_path / "obj" / "textures" / "crate_albedo.png").write_bytes(CRATE.with_name("crate_albedo.png").read_bytes())
    small = {key: value for key, value in SMALL.items() if key != "steps"}
    cases = [(gltf / "model.gltf", TextureSettings(prompt="vase", model=oracle(VASE), **small)),
             (nested / "crate.obj", TextureSettings(prompt="crate", model=oracle(CRATE), init_texture="mesh", **small)),
             (CRATE, TextureSettings(prompt="crate", model=oracle(CRATE), init_texture=str(VASE.with_name(
                 "crate_albedo.png")), **small))]
    for source, settings in cases:
        files = task_files(Task(source.name, source, settings))
        assert source.name in files and len(files) > 1, sorted(files)
        shipped = TextureWorker().texture(source.name, files, settings)
        np.testing.assert_array_equal(shipped.texture, texture_mesh(source, settings=settings).texture,
                                      err_msg=source.name)
    assert sorted(task_files(Task("crate.obj", nested / "crate.obj", cases[1][1]))) == [
        "../textures/crate_albedo.png", "crate.mtl", "crate.obj"]


@pytest.mark.slow  # about a minute on two loaded CPU cores (Ray start, two actors importing torch)
def test_ray_executor_matches_local(reference: tuple[Path, Path, TextureSettings], tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        workers = run_and_compare(reference, tmp_path / "ray", lambda: RayExecutor(workers=2))
    finally:
        ray.shutdown()
    assert set(workers.values()) == {"ray-0", "ray-1"}


def test_server_executor_over_two_servers(reference: tuple[Path, Path, TextureSettings], tmp_path: Path) -> None:
    from server_support import free_port, serve_process, stop_process, wait_ready

    addresses = [f"tcp://127.0.0.1:{free_port()}" for _ in range(2)]
    servers = [serve_process(["--bind", address, "--device", "cpu", "--model", oracle(CRATE)], tmp_path / f"{i}.log")
               for i, address in enumerate(addresses)]
    try:
        for address in addresses:
            wait_ready(address, 1, timeout=240)
        workers = run_and_compare(reference, tmp_path / "servers", lambda: ServerExecutor(addresses, timeout=30))
    finally:
        for server in servers:
            stop_process(server)
    assert set(workers.values()) == set(addresses)


@pytest.mark.slow  # the client notices a silent server after 30 s
def test_a_server_killed_mid_batch_hands_its_assets_over(reference: tuple[Path, Path, TextureSettings],
                                                          tmp_path: Path) -> None:
    from server_support import free_port, serve_process, stop_process, wait_ready

    addresses = [f"tcp://127.0.0.1:{free_port()}" for _ in range(2)]
    servers = [serve_process(["--bind", address, "--device", "cpu", "--model", oracle(CRATE)], tmp_path / f"{i}.log")
               for i, address in enumerate(addresses)]
    dst = tmp_path / "dst"

    def kill_first_server_after_one_asset() -> None:
        while servers[0].poll() is None:
            try:
                with Ledger(dst / LEDGER_NAME, readonly=True) as ledger:
                    if ledger.counts()["done"]:
                        servers[0].send_signal(signal.SIGKILL)
            except TexgenError:
                pass
            time.sleep(0.05)

    killer = threading.Thread(target=kill_first_server_after_one_asset, daemon=True)
    try:
        for address in addresses:
            wait_ready(address, 1, timeout=240)
        killer.start()
        src, local, defaults = reference
        summary = run_batch(BatchSource(src, dst, defaults), lambda: ServerExecutor(addresses, timeout=5),
                            console=quiet(), command="test")
    finally:
        for server in servers:
            stop_process(server)
    assert servers[0].returncode == -signal.SIGKILL
    assert (summary.done, summary.failures) == (COUNT, [(BROKEN, BROKEN_ERROR)])
    assert summary.requeued >= 1
    with Ledger(dst / LEDGER_NAME, readonly=True) as ledger:
        done = [row.key for row in ledger.rows() if row.state == "done"]
    for key in done:
        np.testing.assert_array_equal(albedo(dst, key), albedo(local, key), err_msg=key)


def test_a_worker_killed_mid_asset_sends_the_asset_back(reference: tuple[Path, Path, TextureSettings],
                                                        tmp_path: Path) -> None:
    """The server answers but its worker died with the job: the asset is queued again, not failed."""
    from server_support import free_port, serve_process, stop_process, wait_ready

    from texgen.client import Client

    address = f"tcp://127.0.0.1:{free_port()}"
    server = serve_process(["--bind", address, "--device", "cpu", "--model", oracle(CRATE)], tmp_path / "server.log")
    killed: list[int] = []

    def kill_the_worker_during_the_first_job() -> None:
        with Client(address) as client:
            while not killed:
                status = client.status()
                if any(job["state"] == "running" for job in status["jobs"]):
                    killed.append(status["workers"][0]["pid"])
                    os.kill(killed[0], signal.SIGKILL)
                time.sleep(0.01)

    try:
        wait_ready(address, 1, timeout=240)
        threading.Thread(target=kill_the_worker_during_the_first_job, daemon=True).start()
        src, local, defaults = reference
        summary = run_batch(BatchSource(src, tmp_path / "dst", defaults), lambda: ServerExecutor([address], timeout=5),
                            console=quiet(), command="test")
    finally:
        stop_process(server)
    assert killed, "no job was seen running"
    assert (summary.done, summary.failures) == (COUNT, [(BROKEN, BROKEN_ERROR)])
    assert summary.requeued >= 1
    with Ledger(tmp_path / "dst" / LEDGER_NAME, readonly=True) as ledger:
        done = [row.key for row in ledger.rows() if row.state == "done"]
    for key in done:
        np.testing.assert_array_equal(albedo(tmp_path / "dst", key), albedo(local, key), err_msg=key)


class Flaky:
    """Wraps the local executor; the first ``losses`` submissions of each asset die with WorkerLost,
    and submitting the asset named ``interrupt_at`` raises KeyboardInterrupt (Ctrl-C)."""

    name = "flaky"

    def __init__(self, losses: int, interrupt_at: str = "") -> None:
        self.inner, self.losses, self.interrupt_at = LocalExecutor(), losses, interrupt_at
        self.seen: dict[str, int] = {}
        self.slots = 1

    def submit(self, task: Task) -> Future:
        if task.key == self.interrupt_at:
            raise KeyboardInterrupt
        self.seen[task.key] = self.seen.get(task.key, 0) + 1
        if self.seen[task.key] <= self.losses:
            future: Future = Future()
            future.set_exception(WorkerLost("worker 7 died"))
            return future
        return self.inner.submit(task)

    def worker_of(self, future: Future) -> str:
        return "flaky"

    def close(self) -> None:
        self.inner.close()


def test_lost_workers_requeue_then_fail(reference: tuple[Path, Path, TextureSettings], tmp_path: Path) -> None:
    src, _, defaults = reference
    source = BatchSource(src, tmp_path / "dst", defaults, glob="shelf0/crate0.obj")
    summary = run_batch(source, lambda: Flaky(losses=1), console=quiet(), command="test")
    assert (summary.done, summary.requeued) == (1, 1)
    source = BatchSource(src, tmp_path / "dst2", defaults, glob="shelf0/crate0.obj")
    summary = run_batch(source, lambda: Flaky(losses=99), console=quiet(), command="test")
    assert summary.failed == 1 and "it may crash workers" in summary.failures[0][1]


def test_ctrl_c_leaves_nothing_running(reference: tuple[Path, Path, TextureSettings], tmp_path: Path) -> None:
    src, _, defaults = reference
    dst = tmp_path / "dst"
    with pytest.raises(KeyboardInterrupt):
        run_batch(BatchSource(src, dst, defaults), lambda: Flaky(0, interrupt_at="shelf1/crate1.obj"),
                  console=quiet(), command="test")
    with Ledger(dst / LEDGER_NAME, readonly=True) as ledger:
        states = {row.key: row.state for row in ledger.rows()}
    assert states["shelf0/crate0.obj"] == "done" and states["shelf1/crate1.obj"] == "pending"
    assert "running" not in states.values()


def test_executor_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="--server needs --executor server"):
        make_executor("local", servers=["tcp://127.0.0.1:1"])
    with pytest.raises(ConfigError, match="at least one --server"):
        make_executor("server")
    with pytest.raises(ConfigError, match="need --executor ray"):
        make_executor("local", ray_address="auto")
    with pytest.raises(TexgenError, match="does not answer"):
        ServerExecutor(["tcp://127.0.0.1:9"], timeout=0.5)
