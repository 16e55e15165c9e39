"""What the texgen server costs on top of the pipeline, with the oracle generator. Prints figures.

    python bench/bench_server.py [--faces 100000] [--texture-size 2048] [--runs 3] [--clients 8]

1. Round trip. One texture job (a wavy grid of ``--faces`` faces, a ``--texture-size``² result)
   from the same arrays: in-process (``Mesh.from_arrays`` + ``texture_mesh``) and through
   `texgen serve` on loopback (``Client.texture``). Protocol overhead = round trip - the worker's
   own time from the received arrays to the result (the result's ``compute_s``, the same two calls):
   encoding, validation, transfer and decoding both ways and the hand-offs between processes.
   The in-process time is printed beside it for scale.
2. The wire alone: encode, send over loopback TCP, receive and decode the request and the result.
3. Event latency under load. ``--clients`` client processes submit jobs at once; each progress
   event's age on arrival (worker ``sent_at`` to client receipt) and a probe client's ping round
   trip while they stream.
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import zmq

from texgen import protocol
from texgen.client import Client, Progress

if TYPE_CHECKING:
    from texgen.mesh import Mesh

REPO = Path(__file__).resolve().parents[1]


def grid_mesh(faces: int, name: str = "grid") -> "Mesh":
    """A wavy square grid with about ``faces`` triangles, UVs = its own xy."""
    from texgen.mesh import Mesh

    n = max(2, int(round(np.sqrt(faces / 2))) + 1)
    u, v = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n))
    positions = np.stack([u - 0.5, v - 0.5, 0.05 * np.sin(8 * u) * np.cos(6 * v)], axis=-1).reshape(-1, 3)
    index = np.arange(n * n).reshape(n, n)
    a, b, c, d = index[:-1, :-1], index[:-1, 1:], index[1:, 1:], index[1:, :-1]
    faces_ = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    uvs = np.stack([u, v], axis=-1).reshape(-1, 2) * 0.98 + 0.01
    return Mesh.from_arrays(positions, faces_, uvs, faces_, name=name)


def reference_glb(directory: Path, mesh: "Mesh") -> Path:
    """The oracle's reference: ``mesh`` with a checker-and-gradient texture, written as GLB."""
    from texgen.export import write_outputs
    from texgen.result import TextureResult

    size = 1024
    y, x = np.mgrid[0:size, 0:size]
    texture = np.stack([x * 255 // size, y * 255 // size, ((x // 64 + y // 64) % 2) * 200 + 30], -1).astype(np.uint8)
    return write_outputs(TextureResult(mesh, texture), directory, name="reference")["glb"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(spec: str, workers: int) -> tuple[subprocess.Popen, str]:
    address = f"tcp://127.0.0.1:{free_port()}"
    process = subprocess.Popen([sys.executable, "-m", "texgen", "serve", "--bind", address, "--model", spec,
                                "--device", "auto", "--workers", str(workers), "--max-texture-size", "8192",
                                "--max-queue", "64", "--max-message-mb", "2048"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    with Client(address, timeout=5) as client:
        while sum(w["state"] == "idle" for w in client.status()["workers"]) < workers:
            if process.poll() is not None:
                raise SystemExit(f"the server exited with code {process.returncode}")
            time.sleep(0.2)
    return process, address


def ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
    return f"median {1e3 * statistics.median(values):8.2f} ms  p95 {1e3 * p95:8.2f} ms  max {1e3 * values[-1]:8.2f} ms"


# ---------------------------------------------------------------------------- 1. round trip
def round_trip(address: str, spec: str, mesh: "Mesh", options: dict, runs: int) -> None:
    from texgen.diffusion import load_generator
    from texgen.pipeline import texture_mesh
    from texgen.settings import TextureSettings

    from texgen.mesh import Mesh

    generator = load_generator(spec)
    local = []
    for _ in range(runs):
        start = time.perf_counter()
        texture_mesh(Mesh.from_arrays(mesh.positions, mesh.faces, mesh.uvs, mesh.uv_faces, name=mesh.name),
                     settings=TextureSettings(**options, model=spec), generator=generator)
        local.append(time.perf_counter() - start)
    remote, pipeline, overhead = [], [], []
    with Client(address, timeout=60) as client:
        for _ in range(runs):
            start = time.perf_counter()
            result = client.texture(mesh.positions, mesh.faces, mesh.uvs, mesh.uv_faces, options=options)
            remote.append(time.perf_counter() - start)
            pipeline.append(result.compute_s)
            overhead.append(remote[-1] - pipeline[-1])
    print(f"1. one texture job, {len(mesh.faces)} faces, {options['texture_size']}² result, "
          f"{options['views']} views of {options['view_size']}², {runs} runs")
    print(f"   in-process texture_mesh      {ms(local)}")
    print(f"   through the server           {ms(remote)}")
    print(f"   worker, arrays to result     {ms(pipeline)}")
    print(f"   protocol overhead            {ms(overhead)}   (goal < 50 ms)")


# ---------------------------------------------------------------------------- 2. the wire alone
def wire_only(mesh: "Mesh", texture_size: int, runs: int) -> None:
    from texgen.protocol import Message

    texture = np.random.default_rng(0).integers(0, 255, (texture_size, texture_size, 3), dtype=np.uint8)
    request = Message("texture", "bench", {"options": {"prompt": "x"}},
                      {"positions": mesh.positions, "faces": mesh.faces, "uvs": mesh.uvs, "uv_faces": mesh.uv_faces})
    reply = Message("result", "bench", {"report": {"seconds": {"total": 1.0}}},
                    {"texture": texture, "preview": texture[:256, :256]})
    context = zmq.Context()
    a, b = context.socket(zmq.DEALER), context.socket(zmq.DEALER)
    port = a.bind_to_random_port("tcp://127.0.0.1")
    b.connect(f"tcp://127.0.0.1:{port}")
    for name, message in (("request (mesh)", request), ("result (texture)", reply), ("result as PNG", reply)):
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            protocol.send(a, message, png=name.endswith("PNG"))
            protocol.decode(b.recv_multipart(copy=False))
            times.append(time.perf_counter() - start)
        size = protocol.message_size(protocol.encode(message, png=name.endswith("PNG")))
        print(f"   {name:<18} {size / 2**20:7.1f} MiB  {ms(times)}")
    a.close(0), b.close(0), context.term()


# ---------------------------------------------------------------------------- 3. latency under load
def client_process(address: str, faces: int, options: dict, out: "multiprocessing.Queue") -> None:
    mesh = grid_mesh(faces)
    ages = []
    with Client(address, timeout=30, silence_timeout=120) as client:
        handle = client.submit_texture(mesh.positions, mesh.faces, mesh.uvs, mesh.uv_faces, options=options)
        for event in handle.events():
            if isinstance(event, Progress) and event.sent_at:
                ages.append(time.time() - event.sent_at)
    out.put(ages)


def latency_under_load(address: str, clients: int, faces: int, options: dict) -> None:
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    processes = [context.Process(target=client_process, args=(address, faces, options, out)) for _ in range(clients)]
    pings: list[float] = []
    done = threading.Event()

    def probe() -> None:
        with Client(address, timeout=10) as client:
            while not done.is_set():
                pings.append(client.ping())
                time.sleep(0.02)

    prober = threading.Thread(target=probe)
    start = time.perf_counter()
    for process in processes:
        process.start()
    prober.start()
    ages = [age for _ in processes for age in out.get()]
    for process in processes:
        process.join()
    done.set()
    prober.join()
    print(f"3. {clients} clients at once, one job each ({faces} faces, {options['texture_size']}² result), "
          f"{time.perf_counter() - start:.1f} s in all")
    print(f"   progress event age on arrival {ms(ages)}  ({len(ages)} events)")
    print(f"   probe ping round trip         {ms(pings)}  ({len(pings)} pings)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--texture-size", type=int, default=2048)
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--view-size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--load-faces", type=int, default=5000, help="mesh size of the latency jobs")
    args = parser.parse_args()
    options = {"prompt": "bench", "views": args.views, "view_size": args.view_size,
               "texture_size": args.texture_size, "steps": 4, "seed": 0}
    with tempfile.TemporaryDirectory() as tmp:
        mesh = grid_mesh(args.faces)
        spec = f"oracle:{reference_glb(Path(tmp), mesh)}"
        process, address = start_server(spec, args.workers)
        try:
            round_trip(address, spec, mesh, options, args.runs)
            print("2. the wire alone (encode, loopback TCP, receive, decode)")
            wire_only(mesh, args.texture_size, max(5, args.runs))
            latency_under_load(address, args.clients, args.load_faces, {**options, "texture_size": 512})
        finally:
            process.terminate()
            process.wait(60)


if __name__ == "__main__":
    main()
