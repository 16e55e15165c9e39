"""Seam smoothing after the oracle round trip: the seam Delta E before and after ``smooth_seams``.

    python bench/bench_seam_roundtrip.py                    # spot, bob, avocado, duck; 8 views, 1024 px, 1024^2
    python bench/bench_seam_roundtrip.py avocado --views 8 --view-size 1024 --texture-size 1024

For each mesh of ../shared/eval-meshes it runs ``texgen.eval.roundtrip`` and then smooths the
filled texture's seams twice: with every texel treated as a guess (``confidence=None``) and with
the texels the views painted trusted (``confidence=painted``, what the round trip and the paint
loop should pass). Printed: the reference's seam Delta E, the round trip's, and the two smoothed
figures, the PSNR against the reference over the seam band, and the smoothing time. Issue 2's
target: the round trip adds at most 1 Delta E to the reference's mean seam jump.

``painted`` is read back from the round trip's ``baked`` image (unpainted texels are 0 there),
so a painted texel of pure black would count as unpainted.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from texgen.eval import roundtrip
from texgen.fill import pad_texture
from texgen.mesh import load_mesh
from texgen.seam_blend import BAND_TEXELS, seam_band, smooth_seams
from texgen.seams import edge_pairs, seam_stats
from texgen.texels import TexelMap

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval-meshes"
MESHES = {"spot": "spot/spot_triangulated.obj", "bob": "bob/bob_tri.obj", "avocado": "avocado/avocado.obj",
          "duck": "duck/Duck.glb"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("meshes", nargs="*", default=list(MESHES), help=f"any of {', '.join(MESHES)}")
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--view-size", type=int, default=1024)
    parser.add_argument("--texture-size", type=int, default=1024)
    parser.add_argument("--band", type=float, default=BAND_TEXELS, help="band width in texels")
    parser.add_argument("--pad", type=int, default=8)
    args = parser.parse_args()
    rows = []
    for name in args.meshes:
        mesh = load_mesh(EVAL / MESHES[name])
        metrics, images = roundtrip(mesh, args.views, args.view_size, args.texture_size, pad=args.pad)
        texels = TexelMap.build(mesh, args.texture_size)
        pairs = edge_pairs(mesh)
        color = torch.from_numpy(texels.gather(images["filled"]))
        painted = torch.from_numpy(texels.gather(images["baked"]).any(axis=1))
        reference = texels.gather(images["reference"])
        start = time.perf_counter()
        band = seam_band(mesh, texels, args.band, pairs=pairs)
        row = {"mesh": name, "psnr_db": metrics["psnr_db"], "coverage_views": metrics["coverage_views"],
               "seam_delta_e_reference": metrics["seam_delta_e_reference"],
               "seam_delta_e_roundtrip": metrics["seam_delta_e"], "band_texels": int(band.mask.sum())}
        for label, confidence in (("guess", None), ("painted", painted.float())):
            smoothed = smooth_seams(mesh, texels, color, args.band, confidence=confidence, pairs=pairs, band=band)
            row[f"seconds_{label}"] = time.perf_counter() - start
            texture = pad_texture(texels, texels.to_image(smoothed), args.pad)
            texture8 = np.clip(np.round(texture * 255), 0, 255).astype(np.uint8)
            row[f"seam_delta_e_{label}"] = seam_stats(mesh, texture8, pairs=pairs).seam_delta_e
            error = np.mean((smoothed.numpy()[band.mask] - reference[band.mask]) ** 2)
            row[f"band_psnr_{label}"] = float(10 * np.log10(1 / error))
            start = time.perf_counter()
        error = np.mean((color.numpy()[band.mask] - reference[band.mask]) ** 2)
        row["band_psnr_roundtrip"] = float(10 * np.log10(1 / error))
        rows.append(row)
        print(json.dumps(row))
    print(f"\n{'mesh':8s} {'reference':>9s} {'roundtrip':>9s} {'guess':>7s} {'painted':>7s}   band PSNR rt/guess/painted  seconds")
    for row in rows:
        print(f"{row['mesh']:8s} {row['seam_delta_e_reference']:9.2f} {row['seam_delta_e_roundtrip']:9.2f} "
              f"{row['seam_delta_e_guess']:7.2f} {row['seam_delta_e_painted']:7.2f}   "
              f"{row['band_psnr_roundtrip']:5.1f} / {row['band_psnr_guess']:5.1f} / {row['band_psnr_painted']:5.1f}"
              f"       {row['seconds_painted']:.2f}")


if __name__ == "__main__":
    main()
