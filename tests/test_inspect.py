"""`texgen inspect`: what texgen reads in a mesh, and its UV layout picture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_mesh import L_SHAPE_OBJ

from texgen.cli import main

ASSETS = Path(__file__).resolve().parents[1] / "assets"
DUCK = Path(__file__).resolve().parents[2] / "shared" / "eval-meshes" / "duck" / "Duck.glb"


def inspect_json(capsys: pytest.CaptureFixture, *args: str) -> dict:
    assert main(["inspect", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_crate_and_its_uv_layout(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    facts = inspect_json(capsys, str(ASSETS / "crate.obj"), "--texture-size", "256",
                         "--uv-png", str(tmp_path / "uv.png"))
    assert (facts["vertices"], facts["faces"], facts["triangles"]) == (866, 1728, 1728)
    assert facts["uvs"]["islands"] == 6 and facts["uvs"]["overlap"] == 0 and 0.5 < facts["uvs"]["coverage"] < 0.8
    assert facts["uvs"]["seam_edges"] == facts["uvs"]["seams_on_hard_edges"] == 144  # a box's seams: its corners
    assert facts["texture"] == {"width": 512, "height": 512, "alpha": False} and facts["notes"] == []
    assert facts["glb_output"] == "built from the mesh"  # an OBJ
    layout = np.asarray(Image.open(tmp_path / "uv.png"))
    assert layout.shape == (256, 256, 3) and (layout == 255).all(axis=2).any()  # the UV edges, in white


def test_polygons_normals_and_the_unwrap_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "l.obj"  # L_SHAPE_OBJ's positions and polygons, without its UVs
    path.write_text("".join(line + "\n" for line in L_SHAPE_OBJ.splitlines() if line.startswith("v "))
                    + "f 3 4 5 6 1 2\nf 2 7 8 3\n")
    facts = inspect_json(capsys, str(path), "--texture-size", "128")
    assert (facts["faces"], facts["triangles"], facts["polygon_corners_max"]) == (2, 6, 6)
    assert facts["normals"].startswith("none") and facts["notes"] == ["the mesh had no UVs; unwrapped with xatlas"]


@pytest.mark.skipif(not DUCK.is_file(), reason=f"{DUCK} is absent")
def test_the_ducks_mirrored_uvs_show_as_overlap(capsys: pytest.CaptureFixture) -> None:
    facts = inspect_json(capsys, str(DUCK), "--texture-size", "256")
    assert facts["uvs"]["overlap"] > 0.9 and facts["normals"] == "file"
    assert 0 < facts["uvs"]["seams_on_hard_edges"] < facts["uvs"]["seam_edges"] == 166  # its eyes' rims are hard
    assert facts["material"]["maps"] == [] and facts["material"]["alpha_mode"] == "OPAQUE"
    assert facts["glb_output"] == "the file itself, with the new base colour map"
