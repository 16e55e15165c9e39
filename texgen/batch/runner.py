"""The batch loop: plan, skip what is done, texture the rest on an executor, write, record.

1. plan the assets (sources.py); a bad manifest or template stops here, before any work
2. lock DST and open its ledger; record refused assets as failed
3. hash each input (the sha256 of the mesh and the files it reads, reused while their size and mtime
   are unchanged) and
   skip assets done with the same inputs and outputs still present (and failed ones, unless
   ``retry_failed``); everything else becomes pending, including rows left ``running`` by a
   killed batch
4. run the pending assets on the executor; when one is painted, write its outputs atomically
   (texgen.export.write_outputs) in a writer thread, hash them and mark the asset done; a
   failure is recorded and the batch goes on
5. write DST/index.html and the summary

Outputs are complete files or absent: each is written to a temporary file and renamed, and an
asset is marked done only after all its files are in place. A killed batch leaves at most the
assets it was painting as ``running``; the next run redoes them.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import TexgenError
from ..export import output_paths, write_outputs
from ..mesh import companion_files
from ..result import TextureResult
from .executors import Executor, Task, WorkerLost
from .ledger import LEDGER_NAME, AssetRow, BatchLock, InputFacts, Ledger, file_sha256, inputs_sha256, options_digest
from .report import BatchProgress, BatchSummary, print_summary, relative_to_dst, write_index
from .sources import Asset, BatchSource, plan_assets, stale_temp_files

# settings that change where or how fast a job runs, not what it paints
NOT_HASHED = ("device",)
WRITERS = 2  # threads encoding and writing outputs while the executor paints the next assets
MAX_REQUEUES = 2  # a task whose worker died this often is recorded as failed (it may kill workers)


@dataclass
class _Flight:
    """An asset being painted or written: when it started, on which worker, how long it painted."""

    asset: Asset
    started: float
    worker: str = ""
    texture_s: float = 0.0


def run_batch(source: BatchSource, make_executor: Callable[[], Executor], *, retry_failed: bool = False,
              console: Any = None, command: Optional[str] = None) -> BatchSummary:
    """Texture every asset of ``source`` that is not done yet; see the module docstring.

    make_executor : called only when there is work to do (so a finished batch starts no Ray)
    console : a rich Console for the progress bar and the summary (default: stdout)
    """
    from rich.console import Console

    console = console or Console()
    started = time.perf_counter()
    assets = plan_assets(source)  # 1.
    dst = source.dst.resolve()
    dst.mkdir(parents=True, exist_ok=True)
    summary = BatchSummary(assets=len(assets))
    with BatchLock(dst), Ledger(dst / LEDGER_NAME) as ledger:  # 2.
        command = command if command is not None else shlex.join(sys.argv)
        summary.run = run = ledger.begin_run(command, "")
        todo = _select(ledger, assets, dst, run, retry_failed, summary)  # 3.
        if todo:
            executor = make_executor()
            ledger.set_executor(run, executor.name)
            try:
                _Loop(ledger, executor, dst, run, summary, console).run(todo)  # 4.
            finally:
                executor.close()
        summary.wall_s = time.perf_counter() - started
        ledger.end_run(run, summary.as_dict())
        write_index(dst, ledger.rows())  # 5.
    print_summary(console, summary, dst)
    return summary


def _select(ledger: Ledger, assets: list[Asset], dst: Path, run: int, retry_failed: bool,
            summary: BatchSummary) -> list[Asset]:
    """Record refused assets, skip unchanged finished ones, mark the rest pending; returns the rest."""
    todo, plans = [], []

    def record_failure(key: str, error: str) -> None:
        _timed(summary, "ledger", ledger.fail, key, run, error)
        summary.failed += 1
        summary.failures.append((key, error))

    for asset in assets:
        if asset.error:
            record_failure(asset.key, asset.error)
            continue
        row = _timed(summary, "ledger", ledger.get, asset.key)
        try:
            facts = _timed(summary, "hash", input_facts, asset, row)
        except OSError as exc:
            record_failure(asset.key, f"cannot read {asset.source}: {exc.strerror or exc}")
            continue
        if row is not None and row.same_inputs(facts):
            if row.state == "done" and _outputs_present(row, dst):
                summary.skipped += 1
                continue
            if row.state == "failed" and not retry_failed:
                summary.failed_before += 1
                continue
        plans.append((asset.key, str(asset.source), relative_to_dst(asset.out_dir, dst), asset.name, facts))
        todo.append(asset)
    _timed(summary, "ledger", ledger.plan, plans)
    return todo


def input_facts(asset: Asset, row: Optional[AssetRow]) -> InputFacts:
    """The asset's InputFacts; the mesh and the files it reads (an OBJ's materials and maps, a .gltf's
    buffers and images) are re-hashed only when their total size or newest mtime changed."""
    files = {name: asset.source.parent / name for name in [asset.source.name, *companion_files(asset.source)]}
    stats = [path.stat() for path in files.values()]
    size, mtime_ns = sum(stat.st_size for stat in stats), max(stat.st_mtime_ns for stat in stats)
    same_files = (row is not None and row.input_sha256 and row.source == str(asset.source)
                  and row.input_size == size and row.input_mtime_ns == mtime_ns)
    sha = row.input_sha256 if same_files else inputs_sha256(files)
    options = {key: value for key, value in asset.settings.to_dict().items() if key not in NOT_HASHED}
    text, digest = options_digest(options)
    return InputFacts(sha, size, mtime_ns, asset.settings.prompt, digest, text)


def _outputs_present(row: AssetRow, dst: Path) -> bool:
    return bool(row.outputs) and all((dst / entry["path"]).is_file() for entry in row.outputs.values())


def _timed(summary: BatchSummary, kind: str, function: Callable, *args: Any) -> Any:
    start = time.perf_counter()
    try:
        return function(*args)
    finally:
        summary.add_time(kind, time.perf_counter() - start)


def commit_outputs(result: TextureResult, asset: Asset, dst: Path) -> tuple[dict[str, dict[str, Any]], float, float]:
    """Write the asset's outputs atomically (replacing an older version) and hash them.

    returns : outputs by kind ({"path" relative to DST, "sha256", "bytes"}), seconds writing, seconds hashing
    """
    start = time.perf_counter()
    names = [path.name for path in output_paths(asset.out_dir, asset.name).values()]
    for stale in stale_temp_files(asset.out_dir, names):  # left by a killed batch
        stale.unlink(missing_ok=True)
    paths = write_outputs(result, asset.out_dir, asset.name, overwrite=True)
    written = time.perf_counter()
    outputs = {kind: {"path": relative_to_dst(path, dst), "sha256": file_sha256(path), "bytes": path.stat().st_size}
               for kind, path in paths.items()}
    return outputs, written - start, time.perf_counter() - written


def error_text(exc: BaseException) -> str:
    """One line for the ledger: the message of texgen's own errors, the type too for anything else."""
    if isinstance(exc, TexgenError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}".strip()


class _Loop:
    """Step 4: keep the executor's slots busy, write finished assets, record everything."""

    def __init__(self, ledger: Ledger, executor: Executor, dst: Path, run: int, summary: BatchSummary,
                 console: Any) -> None:
        self.ledger, self.executor, self.dst, self.run_id = ledger, executor, dst, run
        self.summary, self.console = summary, console
        self.painting: dict[Future, _Flight] = {}
        self.writing: dict[Future, _Flight] = {}
        self.requeues: dict[str, int] = {}

    def run(self, todo: list[Asset]) -> None:
        queue = deque(todo)
        writers = ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="texgen-write")
        with BatchProgress(self.console, len(todo)) as progress:
            self.progress = progress
            try:
                while queue or self.painting or self.writing:
                    while queue and len(self.painting) < self.executor.slots and len(self.writing) < 2 * WRITERS:
                        self._submit(queue.popleft())
                    done, _ = wait([*self.painting, *self.writing], return_when=FIRST_COMPLETED)
                    for future in done:
                        if future in self.painting:
                            self._painted(future, queue, writers)
                        else:
                            self._written(future)
            except BaseException:
                self.summary.interrupted = True
                raise
            finally:
                self._stop(writers)

    def _submit(self, asset: Asset) -> None:
        _timed(self.summary, "ledger", self.ledger.start, asset.key, self.run_id, self.executor.name)
        try:
            future = self.executor.submit(Task(asset.key, asset.source, asset.settings))
        except BaseException:
            self.ledger.release(asset.key, self.run_id, "the batch stopped before this asset started")
            raise
        self.painting[future] = _Flight(asset, time.perf_counter())
        self.progress.started(asset.key)

    def _painted(self, future: Future, queue: deque, writers: ThreadPoolExecutor) -> None:
        flight = self.painting.pop(future)
        flight.worker = self.executor.worker_of(future)
        try:
            result = future.result()
        except WorkerLost as exc:
            count = self.requeues[flight.asset.key] = self.requeues.get(flight.asset.key, 0) + 1
            if count <= MAX_REQUEUES:
                self.summary.requeued += 1
                _timed(self.summary, "ledger", self.ledger.release, flight.asset.key, self.run_id, str(exc))
                self.progress.requeued(flight.asset.key, str(exc))
                queue.append(flight.asset)
                return
            self._failed(flight, f"{exc} ({count} times on this asset; it may crash workers)")
            return
        except Exception as exc:  # one asset's failure never stops the batch
            self._failed(flight, error_text(exc))
            return
        flight.texture_s = float(result.report.get("seconds", {}).get("total", 0.0))
        self.summary.add_time("texture", flight.texture_s)
        self.writing[writers.submit(commit_outputs, result, flight.asset, self.dst)] = flight

    def _written(self, future: Future) -> None:
        flight = self.writing.pop(future)
        try:
            outputs, write_s, hash_s = future.result()
        except Exception as exc:
            self._failed(flight, error_text(exc))
            return
        self.summary.add_time("write", write_s)
        self.summary.add_time("hash", hash_s)
        timings = {"texture": flight.texture_s, "write": write_s, "hash": hash_s,
                   "elapsed": time.perf_counter() - flight.started}
        _timed(self.summary, "ledger", self.ledger.done, flight.asset.key, self.run_id, outputs, timings, flight.worker)
        self.summary.done += 1
        self.progress.finished(flight.asset.key)

    def _failed(self, flight: _Flight, error: str) -> None:
        timings = {"elapsed": time.perf_counter() - flight.started}
        _timed(self.summary, "ledger", self.ledger.fail, flight.asset.key, self.run_id, error, timings)
        self.summary.failed += 1
        self.summary.failures.append((flight.asset.key, error))
        self.progress.finished(flight.asset.key, error)

    def _stop(self, writers: ThreadPoolExecutor) -> None:
        """On the way out (normal or not): finish the writes, record them, release what was painting."""
        writers.shutdown(wait=True)
        for future in list(self.writing):
            self._written(future)
        for flight in self.painting.values():
            self.ledger.release(flight.asset.key, self.run_id, "the batch stopped before this asset finished")
        self.painting.clear()


__all__ = ["run_batch", "input_facts", "commit_outputs", "error_text", "NOT_HASHED"]
