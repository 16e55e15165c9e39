"""Seconds per denoising step and peak memory of each diffusion backend, batched, with CFG.

CPU smoke run on tiny random models (seconds)::

    python bench/bench_diffusion.py --tiny --threads 1

On a GPU, the full-size architectures with random weights (they time exactly like the real
weights, and need no download)::

    python bench/bench_diffusion.py --random-weights --dtype fp16 --views 8 --size 768 --steps 25

A step is one UNet (+ ControlNet) evaluation of all views, twice with CFG. The step time is
measured between the first and last step (synchronised), so it excludes text encoding, the
first step's warm-up and VAE decoding, which ``call`` includes. Not used by any test.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from texgen.diffusion.base import SamplerSettings, ViewBatch  # noqa: E402
from texgen.diffusion.loading import LoadOptions, build_generator  # noqa: E402
from texgen.diffusion.tiny import ARCH_NAMES, make_tiny  # noqa: E402
from texgen.progress import ProgressEvent  # noqa: E402


def views(count: int, size: int, inpaint: bool) -> ViewBatch:
    """``count`` views of a sphere's depth; with ``inpaint``, half of each view masked."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    r2 = xs**2 + ys**2
    depth = torch.where(r2 < 0.8, 0.3 + 0.7 * torch.sqrt((0.8 - r2).clamp(min=0) / 0.8), 0.0)
    prompts = [f"a carved wooden statue, view {i}" for i in range(count)]
    if not inpaint:
        return ViewBatch(prompts, depth.expand(count, -1, -1).clone())
    mask = torch.zeros(count, size, size)
    mask[:, :, size // 2:] = 1.0
    image = torch.full((count, 3, size, size), 0.5)
    return ViewBatch(prompts, depth.expand(count, -1, -1).clone(), image=image, mask=mask)


def peak_memory(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB GPU"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB RSS (process)"


def time_call(generator, batch: ViewBatch, sampler: SamplerSettings, inpaint: bool) -> tuple[float, float]:
    """(seconds per step, seconds for the whole call)."""
    stamps: list[float] = []
    cuda = generator.device.type == "cuda"

    def on_step(event: ProgressEvent) -> None:
        if cuda:
            torch.cuda.synchronize(generator.device)
        stamps.append(time.perf_counter())

    start = time.perf_counter()
    (generator.inpaint if inpaint else generator.generate)(batch, sampler, progress=on_step)
    total = time.perf_counter() - start
    per_step = (stamps[-1] - stamps[0]) / (len(stamps) - 1) if len(stamps) > 1 else total
    return per_step, total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--tiny", action="store_true", help="tiny random models (CPU smoke run)")
    source.add_argument("--random-weights", action="store_true", help="full-size models with random weights")
    parser.add_argument("--arch", nargs="+", default=list(ARCH_NAMES), choices=ARCH_NAMES)
    parser.add_argument("--views", type=int, default=None, help="views per batch (tiny: 2, full: 8)")
    parser.add_argument("--size", type=int, default=None, help="view size in px (tiny: 64, full: 768)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (tiny: 4, full: 25)")
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--dtype", default="auto", choices=["auto", "fp16", "bf16", "fp32"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--inpaint", action="store_true", help="also time inpainting (half of each view)")
    parser.add_argument("--cpu-offload", action="store_true")
    parser.add_argument("--vae-slicing", action="store_true")
    parser.add_argument("--vae-tiling", action="store_true")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    count = args.views or (2 if args.tiny else 8)
    size = args.size or (64 if args.tiny else 768)
    steps = args.steps or (4 if args.tiny else 25)
    options = LoadOptions(dtype=args.dtype, cpu_offload=args.cpu_offload, vae_slicing=args.vae_slicing,
                          vae_tiling=args.vae_tiling, channels_last=args.channels_last, compile=args.compile)
    sampler = SamplerSettings(steps=steps, guidance=args.guidance, preview_every=0)
    warmup = SamplerSettings(steps=2, guidance=args.guidance, preview_every=0)
    print(f"torch {torch.__version__} ({torch.get_num_threads()} CPU threads), {count} views of {size}x{size}, "
          f"{steps} steps, guidance {args.guidance}, {options}")
    tasks = ["generate", "inpaint"] if args.inpaint else ["generate"]
    with tempfile.TemporaryDirectory() as scratch:
        for arch in args.arch:
            spec = str(make_tiny(Path(scratch) / arch, arch)) if args.tiny else f"random:{arch}"
            start = time.perf_counter()
            generator = build_generator(spec, device=args.device, options=options)
            load = time.perf_counter() - start
            for task in tasks:
                batch = views(count, size, task == "inpaint")
                time_call(generator, batch, warmup, task == "inpaint")
                if generator.device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(generator.device)
                per_step, total = time_call(generator, batch, sampler, task == "inpaint")
                samples = 2 * count if args.guidance > 1 else count
                dtype = str(generator.dtype).removeprefix("torch.")
                print(f"{arch:16s} {task:8s} {generator.device} {dtype}: "
                      f"{per_step:.3f} s/step ({samples} denoiser samples), "
                      f"call {total:.2f} s, load {load:.1f} s, peak {peak_memory(generator.device)}")
            del generator
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
