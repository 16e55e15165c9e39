"""The Ray and server executors give the same outputs and ledger as the local one.

Ray runs on a local instance (``ray.init(num_cpus=2)``, two actors); the server executor runs
against two `texgen serve` subprocesses on loopback. Both use the oracle generator.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from rich.console import Console
from test_batch import CRATE, SMALL, albedo, crate_folder, oracle

from texgen.batch.executors import Executor, LocalExecutor, RayExecutor, ServerExecutor, make_executor
from texgen.batch.ledger import LEDGER_NAME, Ledger
from texgen.batch.runner import run_batch
from texgen.batch.sources import BatchSource
from texgen.errors import ConfigError, TexgenError
from texgen.settings import TextureSettings

COUNT = 4


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, TextureSettings]:
    """SRC with COUNT crates, and DST of a local run."""
    root = tmp_path_factory.mktemp("executors")
    src = crate_folder(root / "src", COUNT)
    defaults = TextureSettings(prompt="{stem}, weathered", model=oracle(CRATE), **SMALL)
    summary = run_batch(BatchSource(src, root / "local", defaults), LocalExecutor,
                        console=Console(file=io.StringIO()), command="test")
    assert summary.done == COUNT
    return src, root / "local", defaults


def run_and_compare(reference: tuple[Path, Path, TextureSettings], dst: Path,
                    make: Callable[[], Executor]) -> dict[str, str]:
    """Run the batch into ``dst`` with ``make``; check outputs equal the local run's; return worker per asset."""
    src, local, defaults = reference
    summary = run_batch(BatchSource(src, dst, defaults), make, console=Console(file=io.StringIO()), command="test")
    assert (summary.done, summary.failed) == (COUNT, 0), summary.failures
    with Ledger(dst / LEDGER_NAME, readonly=True) as ledger:
        rows = ledger.rows()
    assert [row.state for row in rows] == ["done"] * COUNT
    for row in rows:
        np.testing.assert_array_equal(albedo(dst, row.key), albedo(local, row.key), err_msg=row.key)
    return {row.key: row.worker for row in rows}


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
        workers = run_and_compare(reference, tmp_path / "servers", lambda: ServerExecutor(addresses))
    finally:
        for server in servers:
            stop_process(server)
    assert set(workers.values()) == set(addresses)


def test_executor_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="--server needs --executor server"):
        make_executor("local", servers=["tcp://127.0.0.1:1"])
    with pytest.raises(ConfigError, match="at least one --server"):
        make_executor("server")
    with pytest.raises(ConfigError, match="need --executor ray"):
        make_executor("local", ray_address="auto")
    with pytest.raises(TexgenError, match="does not answer"):
        ServerExecutor(["tcp://127.0.0.1:9"], timeout=0.5)
