"""Helpers shared by the server and client tests: small meshes, servers on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from texgen.client import Client
from texgen.server import Server, ServerConfig

REPO = Path(__file__).resolve().parents[1]
# small enough that a job takes a second or two on a CPU with the tiny model
QUICK = {"prompt": "a weathered stone", "views": 2, "view_size": 64, "texture_size": 64, "steps": 2, "seed": 5}
# long enough to cancel, kill or disconnect in the middle
SLOW = {**QUICK, "views": 4, "steps": 200}


def uv_sphere(rings: int = 8, segments: int = 12) -> dict[str, np.ndarray]:
    """A latitude-longitude sphere with per-corner UVs (a seam at u = 0/1, poles welded).

    Returns positions (V, 3) float64, faces (F, 3) int64, uvs (T, 2) float64, uv_faces (F, 3) int64.
    """
    theta = np.linspace(0, np.pi, rings + 1)
    phi = np.linspace(0, 2 * np.pi, segments + 1)
    index = np.full((rings + 1, segments + 1), -1, np.int64)
    positions = [[0.0, 1.0, 0.0]]
    index[0] = 0
    for r in range(1, rings):
        for s in range(segments):
            index[r, s] = len(positions)
            positions.append([np.sin(theta[r]) * np.cos(phi[s]), np.cos(theta[r]), np.sin(theta[r]) * np.sin(phi[s])])
        index[r, segments] = index[r, 0]
    index[rings] = len(positions)
    positions.append([0.0, -1.0, 0.0])
    uv_grid = np.stack(np.meshgrid(phi / (2 * np.pi), 1 - theta / np.pi), axis=-1).reshape(-1, 2)
    uv_index = np.arange((rings + 1) * (segments + 1)).reshape(rings + 1, segments + 1)
    faces, uv_faces = [], []
    for r in range(rings):
        for s in range(segments):
            a, b, c, d = (r, s), (r + 1, s), (r + 1, s + 1), (r, s + 1)
            for tri in ((a, b, c), (a, c, d)):
                verts = [index[p] for p in tri]
                if len(set(verts)) == 3:
                    faces.append(verts)
                    uv_faces.append([uv_index[p] for p in tri])
    uvs = uv_grid * 0.98 + 0.01  # keep a texel of margin inside the square
    return {"positions": np.asarray(positions, np.float64), "faces": np.asarray(faces, np.int64),
            "uvs": uvs.astype(np.float64), "uv_faces": np.asarray(uv_faces, np.int64)}


def mesh_args(mesh: dict[str, np.ndarray]) -> tuple:
    return mesh["positions"], mesh["faces"], mesh["uvs"], mesh["uv_faces"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def server_thread(config: ServerConfig, *, ready_timeout: float = 180.0) -> Iterator[Server]:
    """A server running in a thread of this process (its workers are real processes)."""
    server = Server(config)
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(server.serve_forever()), daemon=True)
    thread.start()
    try:
        wait_ready(server.address, config.workers, ready_timeout)
        yield server
    finally:
        server.stop()
        thread.join(60)
        assert not thread.is_alive(), "the server did not stop"


def wait_ready(address: str, workers: int = 1, timeout: float = 180.0, **keys) -> dict:
    """Poll status until ``workers`` workers are idle; returns the last status."""
    deadline = time.monotonic() + timeout
    with Client(address, timeout=5, **keys) as client:
        while True:
            status = client.status()
            if sum(w["state"] == "idle" for w in status["workers"]) >= workers:
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"workers not ready after {timeout} s: {status['workers']}")
            time.sleep(0.2)


def serve_process(args: list[str], log_path: Path) -> subprocess.Popen:
    """`texgen serve ARGS` as a subprocess, its log in ``log_path``."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "texgen", "serve", *args], stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd=REPO)


def stop_process(process: subprocess.Popen, timeout: float = 30.0) -> Optional[int]:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()
