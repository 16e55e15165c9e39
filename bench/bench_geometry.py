"""Geometry-stage benchmark (issue 2): render, UV rasterisation, back-projection and blend, fill and pad.

Input: a latitude/longitude UV sphere of about 100k faces (one UV island with a seam at u = 0 and
fans at the poles, inset so that padding has work), 8 views at 768 px, a 2048 x 2048 texture. The
view images are oracle renders of a procedural texture; making them is the generator's work and is
not counted. The reference is one plain ``torch.nn.functional.grid_sample`` pass over the same
texels and views (bilinear, the grids made beforehand). On the CPU, grid_sample uses one thread
per batch item, so the plain pass runs on one core; the same pass split over every thread is
printed beside it.

Each stage runs ``--repeat`` times after a warm-up (the EGL context, torch's first calls) and the
best time is kept. The total is the whole stage as texgen runs it (the UV layout rasterises on a
background thread while the views render), timed as one; the sum of the stages timed alone is
printed too, with each stage's CPU time, and so is the whole stage's: how many cores it kept busy on average. Goal: the
geometry stage under 1.5 s on 2 CPU cores, within 3x of grid_sample.

    PYOPENGL_PLATFORM=egl python bench/bench_geometry.py [--faces 100000] [--views 8]
        [--view-size 768] [--texture-size 2048] [--repeat 3] [--profile STAGE]
"""

from __future__ import annotations

import argparse
import cProfile
import math
import os
import pstats
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from texgen.camera import default_views
from texgen.fill import fill_unseen, pad_texture
from texgen.mesh import Mesh
from texgen.project import TextureState, sample_views
from texgen.render import Renderer, ViewBuffers
from texgen.texels import TexelMap, build_in_background

UV_INSET = 0.02  # the layout fills [0.02, 0.98]^2, so padding has a border to fill
PAD = 8


def uv_sphere(faces: int) -> Mesh:
    """A unit UV sphere with about ``faces`` triangles: shared positions, a UV seam at u = 0, pole fans."""
    rings = max(3, round(math.sqrt(faces / 2)))  # latitude bands; 2 * rings * (rings - 1) faces
    segments = rings
    lat = np.linspace(0, math.pi, rings + 1)[1:-1]  # the rings of vertices between the poles
    lon = np.linspace(0, 2 * math.pi, segments, endpoint=False)
    ring_points = np.stack([np.sin(lat)[:, None] * np.sin(lon), np.repeat(np.cos(lat)[:, None], segments, 1),
                            np.sin(lat)[:, None] * np.cos(lon)], axis=-1).reshape(-1, 3)
    positions = np.concatenate([ring_points, [[0, 1, 0], [0, -1, 0]]])
    north, south = len(ring_points), len(ring_points) + 1

    def vertex(ring: np.ndarray, segment: np.ndarray) -> np.ndarray:
        return ring * segments + segment % segments

    # UVs: a (rings - 1) x (segments + 1) grid (the seam column is duplicated), plus one UV per pole triangle
    grid_u = np.arange(segments + 1) / segments
    grid_v = 1 - (np.arange(1, rings)) / rings
    grid = np.stack(np.meshgrid(grid_u, grid_v), axis=-1).reshape(-1, 2)
    poles_u = (np.arange(segments) + 0.5) / segments
    uvs = np.concatenate([grid, np.stack([poles_u, np.ones(segments)], 1), np.stack([poles_u, np.zeros(segments)], 1)])
    uvs = UV_INSET + uvs * (1 - 2 * UV_INSET)
    north_uv, south_uv = len(grid), len(grid) + segments

    def uv(ring: np.ndarray, segment: np.ndarray) -> np.ndarray:
        return ring * (segments + 1) + segment

    r, s = np.meshgrid(np.arange(rings - 2), np.arange(segments), indexing="ij")
    r, s = r.reshape(-1), s.reshape(-1)
    band = [np.stack([vertex(r, s), vertex(r + 1, s), vertex(r + 1, s + 1)], 1),
            np.stack([vertex(r, s), vertex(r + 1, s + 1), vertex(r, s + 1)], 1)]
    band_uv = [np.stack([uv(r, s), uv(r + 1, s), uv(r + 1, s + 1)], 1),
               np.stack([uv(r, s), uv(r + 1, s + 1), uv(r, s + 1)], 1)]
    s = np.arange(segments)
    last = np.full(segments, rings - 2)
    caps = [np.stack([np.full(segments, north), vertex(0 * s, s), vertex(0 * s, s + 1)], 1),
            np.stack([np.full(segments, south), vertex(last, s + 1), vertex(last, s)], 1)]
    caps_uv = [np.stack([north_uv + s, uv(0 * s, s), uv(0 * s, s + 1)], 1),
               np.stack([south_uv + s, uv(last, s + 1), uv(last, s)], 1)]
    return Mesh.from_arrays(positions, np.concatenate(band + caps), uvs, np.concatenate(band_uv + caps_uv),
                            name="uv-sphere")


def procedural_texture(size: int) -> np.ndarray:
    """(size, size, 3) uint8: smooth colour waves with a grid of lines, so every view has detail."""
    x = np.linspace(0, 1, size, dtype=np.float32)
    u, v = np.meshgrid(x, x[::-1])
    colour = np.stack([0.5 + 0.4 * np.sin(12 * u * np.pi), 0.5 + 0.4 * np.cos(9 * v * np.pi),
                       0.5 + 0.4 * np.sin(7 * (u + v) * np.pi)], axis=-1)
    lines = ((u * 32) % 1 < 0.06) | ((v * 32) % 1 < 0.06)
    colour[lines] *= 0.3
    return (colour * 255).astype(np.uint8)


def best_of(repeat: int, run: Callable[[], object]) -> tuple[float, object, float]:
    """The shortest of ``repeat`` runs, the last run's result, and the CPU seconds of the shortest run."""
    best, result, cpu = math.inf, None, 0.0
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = run()
        seconds = time.perf_counter() - start
        if seconds < best:
            best, cpu = seconds, time.process_time() - start_cpu
    return best, result, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--view-size", type=int, default=768)
    parser.add_argument("--texture-size", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", choices=["render", "rasterise", "project", "fill"],
                        help="print a cProfile of one run of this stage")
    args = parser.parse_args()

    mesh = uv_sphere(args.faces)
    cameras = default_views(args.views, args.view_size)
    texture = procedural_texture(args.texture_size)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"mesh: {len(mesh.faces)} faces, {len(mesh.positions)} vertices, {len(mesh.uvs)} UVs; "
          f"{args.views} views at {args.view_size} px; texture {args.texture_size}^2; "
          f"{cores} CPU cores, torch threads {torch.get_num_threads()}, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")

    def fresh_mesh() -> Mesh:  # derived data (normals, islands, unit frame) is cached on a mesh: start bare
        return Mesh(mesh.positions, mesh.faces, mesh.uvs, mesh.uv_faces, None, mesh.name)

    renderer = Renderer(mesh)
    images = renderer.render_texture(cameras, texture)  # the generator's work, and the EGL warm-up

    def render(bare: Mesh) -> ViewBuffers:
        with Renderer(bare) as r:
            return r.render(cameras)

    def project(texels: TexelMap, buffers: ViewBuffers) -> TextureState:
        state = TextureState(texels)
        for index, samples in enumerate(sample_views(texels, cameras, buffers, images)):
            state.accumulate(samples, index)
        return state

    def fill(texels: TexelMap, state: TextureState) -> np.ndarray:
        texels.prepare_padding(PAD)
        filled = fill_unseen(texels, state.color, state.painted)
        return pad_texture(texels, texels.to_image(filled), PAD)

    def whole_stage() -> TextureState:
        """The stage as texgen runs it: the UV layout rasterises on its background thread while the views render."""
        bare = fresh_mesh()
        texels_ready = build_in_background(bare, args.texture_size)
        buffers = render(bare)
        texels = texels_ready.result()
        state = project(texels, buffers)
        fill(texels, state)
        return state

    buffers = render(fresh_mesh())
    texels = TexelMap.build(fresh_mesh(), args.texture_size)
    state = project(texels, buffers)  # warm-up of torch's kernels
    whole_stage()  # and of the background thread's OpenGL context
    stages = {"render": lambda: render(fresh_mesh()),
              "rasterise": lambda: TexelMap.build(fresh_mesh(), args.texture_size),
              "project": lambda: project(texels, buffers), "fill": lambda: fill(texels, state)}
    runs = {name: best_of(args.repeat, run) for name, run in stages.items()}
    times = {name: seconds for name, (seconds, _, _) in runs.items()}
    whole, _, whole_cpu = best_of(args.repeat, whole_stage)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(stages[args.profile])
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)

    grids = []
    for camera in cameras:
        pixels, _ = camera.project(texels.position)
        grids.append(torch.stack([pixels[:, 0] / camera.width * 2 - 1, pixels[:, 1] / camera.height * 2 - 1],
                                 dim=1)[None, None].contiguous())

    def plain_grid_sample():
        return [F.grid_sample(images[i][None], grids[i], mode="bilinear", align_corners=False)
                for i in range(len(cameras))]

    plain_grid_sample()
    reference, _, _ = best_of(args.repeat, plain_grid_sample)
    threads = torch.get_num_threads()

    def split_grid_sample():  # grid_sample runs a thread per batch item: the texels split into one item per thread
        return [F.grid_sample(images[i][None].expand(threads, -1, -1, -1), grids[i].view(threads, 1, -1, 2),
                              mode="bilinear", align_corners=False) for i in range(len(cameras))]

    grids = [torch.cat([grid[0, 0], grid.new_zeros(-len(grid[0, 0]) % threads, 2)]) for grid in grids]
    split_grid_sample()
    split_reference, _, _ = best_of(args.repeat, split_grid_sample)

    total = sum(times.values())
    print(f"texels: {texels.count} valid of {args.texture_size ** 2}, painted by the views "
          f"{float(state.painted.float().mean()):.3f}")
    labels = {"render": "render (depth, normals, mask)", "rasterise": "UV rasterisation",
              "project": "back-projection and blend", "fill": "fill and pad"}
    for name, (seconds, _, cpu) in runs.items():
        print(f"  {labels[name]:<32} {seconds:7.3f} s   (CPU {cpu:.3f} s)")
    print(f"  {'sum of the stages alone':<32} {total:7.3f} s   (CPU {sum(cpu for _, _, cpu in runs.values()):.3f} s)")
    print(f"  {'geometry stage total':<32} {whole:7.3f} s   (goal < 1.5 s; rasterisation alongside the render)")
    print(f"  {'CPU time of the stage':<32} {whole_cpu:7.3f} s   ({whole_cpu / whole:.2f} cores busy on average)")
    print(f"  {'plain grid_sample pass':<32} {reference:7.3f} s   ({texels.count} texels x {len(cameras)} views)")
    print(f"  {'total / grid_sample':<32} {whole / reference:7.1f} x   (goal <= 3 x)")
    print(f"  {'grid_sample on all threads':<32} {split_reference:7.3f} s   (the texels split into {threads} batch "
          f"items; total / it {whole / split_reference:.1f} x)")


if __name__ == "__main__":
    main()
