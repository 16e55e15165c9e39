"""Geometry and bookkeeping against diffusion in the whole paint loop (`texture_mesh`).

CPU smoke run with a tiny random model (the ratio is what to read; a tiny UNet is fast, so
the geometry share is far larger than with real models)::

    python bench/bench_pipeline.py --tiny --view-size 256 --steps 10

On a GPU with the full-size SD1.5 + ControlNet (random weights time like real ones)::

    python bench/bench_pipeline.py --model random:sd15-controlnet --views 8 --view-size 768 --steps 25

Prints seconds per stage from the report, the geometry share of the total, the total, and on a
GPU the peak memory the painting run allocated (the model's weights included).
Goal on an H100: geometry under 10 % of the total, an 8-view 768 px 25-step run under 20 s.
Not used by any test.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from texgen.diffusion.tiny import make_tiny  # noqa: E402
from texgen.pipeline import texture_mesh  # noqa: E402

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mesh", type=Path, default=ASSETS / "creature.obj")
    parser.add_argument("--model", default="random:sd15-controlnet")
    parser.add_argument("--tiny", action="store_true", help="a tiny random SD1.5 + ControlNet made here")
    parser.add_argument("--views", default="8")
    parser.add_argument("--view-size", type=int, default=768)
    parser.add_argument("--texture-size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    model = args.model
    with tempfile.TemporaryDirectory() as tmp:
        if args.tiny:
            model = str(make_tiny(Path(tmp) / "tiny", "sd15-controlnet"))
        options = dict(views=args.views if args.views == "auto" else int(args.views), view_size=args.view_size,
                       texture_size=args.texture_size, steps=args.steps, model=model, device=args.device)
        texture_mesh(args.mesh, "warm-up", **{**options, "views": 1, "steps": 2})  # load and warm the model
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        report = texture_mesh(args.mesh, "a carved wooden statue", **options).report
    seconds = report["seconds"]
    memory = {"peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)} if torch.cuda.is_available() else {}
    print(json.dumps({"mesh": args.mesh.name, **{k: v for k, v in options.items() if k != "model"},
                      "model": args.model if not args.tiny else "tiny sd15-controlnet",
                      "timings": {k: round(v, 3) for k, v in report["timings"].items()},
                      "diffusion_s": round(seconds["diffusion"], 3), "geometry_s": round(seconds["geometry"], 3),
                      "geometry_share": round(seconds["geometry"] / seconds["total"], 3),
                      "total_s": round(seconds["total"], 3), **memory}, indent=2))


if __name__ == "__main__":
    main()
