"""Throughput of `texgen batch` with the tiny model: local vs Ray (N workers) vs N servers.

    python bench/bench_batch.py                       # 50 assets, all three executors
    python bench/bench_batch.py --count 12 --executors local ray

The sample folder (assets/: crate, creature, knot, vase) is repeated to --count assets. Each
executor textures the same folder into its own DST. Printed per executor:

- assets/min over the whole run (Ray's start and each worker's model load included; servers are
  started and warm beforehand, as they would be in production), and steady assets/min between
  the first and the last finished asset (from the ledger's timestamps);
- the batch's own cost per asset beyond texturing: input and output hashing plus the SQLite
  ledger ("bookkeeping"), and the same with the output writes added ("+ writes"; those are the
  files `texgen texture` writes too), each as a share of the texturing time; and, for local
  (which paints one asset at a time), the wall-clock overhead: (wall - sum of texturing) / sum.

Threads: every worker gets --threads torch threads (default 1; OpenMP's spinning threads slow a
shared CPU down many times over).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = ("crate.obj", "creature.obj", "knot.ply", "vase.glb")
EXECUTORS = ("local", "ray", "server")


def sample_folder(root: Path, count: int) -> Path:
    """``count`` assets cycling through the samples, ten per folder, OBJs with their MTL and texture."""
    for index in range(count):
        sample = REPO / "assets" / SAMPLES[index % len(SAMPLES)]
        folder = root / f"set{index // 10:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample, folder / f"{sample.stem}{index:03d}{sample.suffix}")
        if sample.suffix == ".obj":
            shutil.copy(sample.with_suffix(".mtl"), folder / f"{sample.stem}{index:03d}.mtl")
            shutil.copy(sample.with_name(f"{sample.stem}_albedo.png"), folder / f"{sample.stem}_albedo.png")
    return root


def tiny_model() -> str:
    """The tiny sd15-controlnet model, made once under the repo's .tiny-models/ (as the tests do)."""
    from texgen.diffusion.tiny import config_hash, make_tiny

    path = REPO / ".tiny-models" / f"sd15-controlnet-{config_hash('sd15-controlnet')}"
    if not (path / "model_index.json").is_file():
        make_tiny(path, "sd15-controlnet")
    return str(path)


def start_servers(count: int, model: str, logs: Path) -> tuple[list[str], list[subprocess.Popen]]:
    """``count`` `texgen serve` processes on loopback, each with one warm worker."""
    from texgen.client import Client

    addresses, processes = [], []
    for index in range(count):
        address = f"tcp://127.0.0.1:{free_port()}"
        log = open(logs / f"server{index}.log", "wb")
        processes.append(subprocess.Popen([sys.executable, "-m", "texgen", "serve", "--bind", address, "--device",
                                           "cpu", "--model", model], stdout=log, stderr=subprocess.STDOUT, cwd=REPO))
        addresses.append(address)
    deadline = time.monotonic() + 300
    for address in addresses:
        with Client(address, timeout=5) as client:
            while not any(w["state"] == "idle" for w in client.status()["workers"]):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{address}: no worker ready; see {logs}")
                time.sleep(0.5)
    return addresses, processes


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_one(kind: str, src: Path, dst: Path, defaults, workers: int, model: str, logs: Path) -> dict:
    """Run the batch on one executor; returns its figures."""
    from rich.console import Console

    from texgen.batch.executors import LocalExecutor, RayExecutor, ServerExecutor
    from texgen.batch.ledger import LEDGER_NAME, Ledger
    from texgen.batch.runner import run_batch
    from texgen.batch.sources import BatchSource

    processes: list[subprocess.Popen] = []
    if kind == "local":
        make = LocalExecutor
    elif kind == "ray":
        import ray

        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        make = lambda: RayExecutor(workers=workers)  # noqa: E731
    else:
        addresses, processes = start_servers(workers, model, logs)
        make = lambda: ServerExecutor(addresses)  # noqa: E731
    try:
        summary = run_batch(BatchSource(src, dst, defaults), make, console=Console(file=io.StringIO()),
                            command=f"bench {kind}")
    finally:
        if kind == "ray":
            ray.shutdown()
        for process in processes:
            process.terminate()
            process.wait(30)
    with Ledger(dst / LEDGER_NAME, readonly=True) as ledger:
        finished = sorted(row.finished for row in ledger.rows() if row.state == "done")
    steady = 60.0 * (len(finished) - 1) / (finished[-1] - finished[0]) if len(finished) > 1 else 0.0
    seconds = summary.seconds
    texture = max(seconds["texture"], 1e-9)
    bookkeeping = seconds["hash"] + seconds["ledger"]
    return {"kind": kind, "done": summary.done, "failed": summary.failed, "wall": summary.wall_s,
            "per_min": 60.0 * summary.done / summary.wall_s, "steady_per_min": steady, "texture": seconds["texture"],
            "write": seconds["write"], "bookkeeping_ms": 1000.0 * bookkeeping / max(summary.done, 1),
            "bookkeeping_pct": 100.0 * bookkeeping / texture,
            "with_writes_pct": 100.0 * (bookkeeping + seconds["write"]) / texture,
            "wall_pct": 100.0 * (summary.wall_s - seconds["texture"]) / texture if kind == "local" else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=50, help="assets (default 50)")
    parser.add_argument("--executors", nargs="+", choices=EXECUTORS, default=list(EXECUTORS))
    parser.add_argument("--workers", type=int, default=2, help="Ray actors and servers (default 2)")
    parser.add_argument("--model", help="model spec (default: the tiny sd15-controlnet model)")
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--view-size", type=int, default=64)
    parser.add_argument("--texture-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker (default 1)")
    parser.add_argument("--keep", type=Path, help="keep the folders here instead of a temporary folder")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before torch loads; servers and Ray inherit it
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

    from texgen.settings import TextureSettings

    model = args.model or tiny_model()
    defaults = TextureSettings(prompt="{stem}, weathered, PBR", model=model, device="cpu", views=args.views,
                               view_size=args.view_size, texture_size=args.texture_size, steps=args.steps)
    root = args.keep or Path(tempfile.mkdtemp(prefix="texgen-bench-batch-"))
    root.mkdir(parents=True, exist_ok=True)
    src = sample_folder(root / "src", args.count)
    print(f"{args.count} assets ({', '.join(SAMPLES)} repeated), model {model}, views {args.views}, "
          f"view {args.view_size}px, texture {args.texture_size}px, steps {args.steps}, {os.cpu_count()} CPUs, "
          f"{args.threads} torch thread(s) per worker, {args.workers} Ray workers / servers", flush=True)
    rows = []
    try:
        for kind in args.executors:
            rows.append(run_one(kind, src, root / f"dst-{kind}", defaults, args.workers, model, root))
            row = rows[-1]
            print(f"{kind:>6}: {row['done']} done, {row['failed']} failed in {row['wall']:.1f} s", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print()
    print(f"{'executor':>8} {'assets/min':>10} {'steady':>8} {'texture s':>9} {'writes s':>8} "
          f"{'bookkeeping':>16} {'+ writes':>9} {'wall overhead':>13}")
    for row in rows:
        wall = "" if row["wall_pct"] is None else f"{row['wall_pct']:.1f}%"
        print(f"{row['kind']:>8} {row['per_min']:>10.1f} {row['steady_per_min']:>8.1f} {row['texture']:>9.1f} "
              f"{row['write']:>8.1f} {row['bookkeeping_ms']:>6.1f} ms {row['bookkeeping_pct']:>5.2f}% "
              f"{row['with_writes_pct']:>8.1f}% {wall:>13}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
