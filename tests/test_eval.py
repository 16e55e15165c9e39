"""The oracle round trip on the sample meshes and the real ones: issue 2's quality targets.

Every mesh runs at 8 views of 512 px into a 512 x 512 texture, which fits the suite's time budget
and is harder than the issue's 1024 px into 1024 x 1024 (fewer pixels per texel); one test runs
the full 1024 configuration. The metrics of each mesh are printed (run with -s to see them).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from texgen.camera import default_views
from texgen.errors import ModelError
from texgen.eval import OracleGenerator, psnr, roundtrip
from texgen.mesh import Mesh, load_mesh

pytest.importorskip("pyrender")

ASSETS = Path(__file__).resolve().parents[1] / "assets"
EVAL_MESHES = Path(__file__).resolve().parents[2] / "shared" / "eval-meshes"
MESHES = {
    "crate": ASSETS / "crate.obj", "creature": ASSETS / "creature.obj", "vase": ASSETS / "vase.glb",
    "spot": EVAL_MESHES / "spot" / "spot_triangulated.obj", "bob": EVAL_MESHES / "bob" / "bob_tri.obj",
    "avocado": EVAL_MESHES / "avocado" / "avocado.obj", "duck": EVAL_MESHES / "duck" / "Duck.glb",
}
SIZE = 512
MIN_PSNR_DB = 35.0
MAX_SEAM_JUMP_ADDED = 1.0  # Delta E the round trip may add to the mean colour jump across seams
# share of valid texels that several UV triangles cover (mirrored halves): left out of the PSNR
OVERLAP = {"duck": (0.90, 0.97)}

_results: dict[tuple[str, int, int, bool], tuple[dict, dict]] = {}


def load(name: str) -> Mesh:
    path = MESHES[name]
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return load_mesh(path)


def run(name: str, view_size: int = SIZE, texture_size: int = SIZE, perturb: bool = False) -> tuple[dict, dict]:
    """The round trip's metrics and images, computed once per configuration and shared by the tests."""
    key = (name, view_size, texture_size, perturb)
    if key not in _results:
        metrics, images = roundtrip(load(name), views=8, view_size=view_size, texture_size=texture_size,
                                    perturb=perturb)
        summary = {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items() if k != "timings"}
        print(f"\n{name} {view_size} px -> {texture_size}^2{' perturbed' if perturb else ''}: {json.dumps(summary)}")
        _results[key] = metrics, images
    return _results[key]


@pytest.mark.parametrize("name", list(MESHES))
def test_roundtrip_psnr_coverage_and_overlap(name: str) -> None:
    metrics, images = run(name)
    assert metrics["psnr_db"] >= MIN_PSNR_DB
    assert metrics["coverage"] == 1.0
    assert 0.5 < metrics["coverage_views"] <= 1.0
    assert metrics["unseen_fraction"] == pytest.approx(1.0 - metrics["coverage_views"])
    low, high = OVERLAP.get(name, (0.0, 0.0))
    assert low <= metrics["overlap_fraction"] <= high
    assert set(metrics["timings"]) >= {"rasterise_uv", "render", "oracle", "project", "fill"}
    json.dumps(metrics)  # JSON-ready

    filled, baked, reference = images["filled"], images["baked"], images["reference"]
    assert filled.shape == baked.shape == reference.shape == (SIZE, SIZE, 3)
    assert np.isfinite(filled).all() and filled.min() >= 0 and filled.max() <= 1


@pytest.mark.parametrize("name", list(MESHES))
def test_roundtrip_adds_at_most_one_delta_e_across_seams(name: str) -> None:
    metrics, _ = run(name)
    print(f"\n{name}: seam ratio {metrics['seam_ratio']:.3f} (reference {metrics['seam_ratio_reference']:.3f}), "
          f"seam jump {metrics['seam_delta_e']:.3f} Delta E (reference {metrics['seam_delta_e_reference']:.3f})")
    assert metrics["seam_delta_e"] <= metrics["seam_delta_e_reference"] + MAX_SEAM_JUMP_ADDED


def test_full_configuration_on_spot() -> None:
    """The issue's own configuration: 8 views of 1024 px into a 1024 x 1024 texture."""
    metrics, _ = run("spot", 1024, 1024)
    assert metrics["psnr_db"] >= MIN_PSNR_DB and metrics["coverage"] == 1.0
    assert metrics["seam_delta_e"] <= metrics["seam_delta_e_reference"] + MAX_SEAM_JUMP_ADDED


def test_a_fully_overlapping_layout_measures_nothing_but_still_fills() -> None:
    """BoxTextured maps the whole texture onto every face: no texel can be attributed to one face."""
    path = EVAL_MESHES / "box_textured" / "BoxTextured.glb"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    metrics, _ = roundtrip(load_mesh(path), views=8, view_size=256, texture_size=256)
    assert metrics["overlap_fraction"] == 1.0 and metrics["psnr_db"] is None
    assert metrics["coverage"] == 1.0


def test_perturbed_oracle_degrades_gracefully() -> None:
    clean, _ = run("crate")
    perturbed, images = run("crate", perturb=True)
    # per-view gain, offset and a 1-3 px shift cost accuracy, but blending keeps it well above noise
    assert 20.0 < perturbed["psnr_db"] < clean["psnr_db"] - 5
    assert perturbed["coverage"] == 1.0 and perturbed["coverage_views"] == clean["coverage_views"]
    assert np.isfinite(images["filled"]).all()
    assert perturbed["seam_delta_e"] <= perturbed["seam_delta_e_reference"] + 3 * MAX_SEAM_JUMP_ADDED


def test_perturbed_renders_are_deterministic_gain_offset_and_shift() -> None:
    mesh = load("crate")
    cameras = default_views(2, 128)
    clean = OracleGenerator(mesh).render(cameras)
    perturbed = OracleGenerator(mesh, perturb=True)
    first, again, other = perturbed.render(cameras, seed=1), perturbed.render(cameras, seed=1), perturbed.render(
        cameras, seed=2)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.shape == clean.shape and first.min() >= 0 and first.max() <= 1
    for view in range(2):
        # some whole-pixel shift of 1-3 px, then a gain and offset per channel, gives the perturbed render
        errors = {}
        for dy in range(-3, 4):
            for dx in range(-3, 4):
                x = torch.roll(clean[view], (dy, dx), dims=(1, 2)).reshape(3, -1).double().numpy()
                y = first[view].reshape(3, -1).double().numpy()
                unclipped = ((x > 0.05) & (x < 0.9) & (y > 0.05) & (y < 0.95)).all(axis=0)
                residual = [np.abs(np.polyval(np.polyfit(x[c, unclipped], y[c, unclipped], 1), x[c, unclipped])
                                   - y[c, unclipped]).mean() for c in range(3)]
                errors[(dy, dx)] = float(np.mean(residual))
        (dy, dx), error = min(errors.items(), key=lambda item: item[1])
        assert 1 <= abs(dy) <= 3 and 1 <= abs(dx) <= 3 and error < 2e-3


def test_roundtrip_and_oracle_need_a_texture() -> None:
    knot = ASSETS / "knot.ply"
    if not knot.is_file():
        pytest.skip(f"{knot} is absent")
    mesh = load_mesh(knot)  # unwrapped on load, with no texture
    with pytest.raises(ModelError, match="knot: the round trip needs a mesh with its own texture"):
        roundtrip(mesh)
    with pytest.raises(ModelError, match="oracle: the reference mesh 'knot' has no texture to render"):
        OracleGenerator(mesh)


def test_psnr() -> None:
    a = np.zeros((10, 3))
    assert psnr(a, a) == math.inf
    assert psnr(a, a + 0.1) == pytest.approx(20.0)
