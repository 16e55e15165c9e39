"""`texgen texture --server` and `texgen inpaint-seams --server` write what a local run writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from server_support import free_port, server_thread
from texgen.cli import main
from texgen.server.app import ServerConfig

CRATE = Path(__file__).resolve().parents[1] / "assets" / "crate.obj"
ORACLE = f"oracle:{CRATE}"


@pytest.fixture(scope="module")
def address():
    config = ServerConfig(bind=f"tcp://127.0.0.1:{free_port()}", models=[ORACLE])
    with server_thread(config) as server:
        yield server.address


def albedo(folder: Path) -> np.ndarray:
    return np.asarray(Image.open(folder / "crate_albedo.png"))


def test_texture_over_the_wire_equals_a_local_run(address: str, tmp_path: Path):
    common = ["texture", str(CRATE), "--prompt", "crate", "--model", ORACLE, "--views", "2",
              "--view-size", "64", "--texture-size", "64"]
    assert main([*common, "--out", str(tmp_path / "local")]) == 0
    assert main([*common, "--server", address, "--out", str(tmp_path / "remote")]) == 0
    assert np.array_equal(albedo(tmp_path / "local"), albedo(tmp_path / "remote"))
    assert sorted(p.name for p in (tmp_path / "remote").iterdir()) == sorted(p.name for p in (tmp_path / "local").iterdir())


def test_inpaint_seams_over_the_wire_equals_a_local_run(address: str, tmp_path: Path):
    common = ["inpaint-seams", str(CRATE), "--method", "classical", "--threshold", "0"]
    assert main([*common, "--out", str(tmp_path / "local")]) == 0
    assert main([*common, "--server", address, "--out", str(tmp_path / "remote")]) == 0
    assert np.array_equal(albedo(tmp_path / "local"), albedo(tmp_path / "remote"))


def split_normal_plane(folder: Path) -> tuple[Path, Path]:
    """A flat 8 x 8 grid in two UV islands (left and right half), its normals split along the seam
    between them (a hard edge an artist marked on a flat surface), and a texture whose islands differ."""
    steps = np.linspace(0.0, 1.0, 9)
    lines = [f"v {x} {y} 0" for y in steps for x in steps]
    lines += [f"vt {0.05 + 0.8 * x} {0.05 + 0.9 * y}" for y in steps for x in steps[:5]]  # the left island
    lines += [f"vt {0.15 + 0.8 * x} {0.05 + 0.9 * y}" for y in steps for x in steps[4:]]  # the right one
    lines += ["vn 0 0 1", "vn 0.6428 0 0.7660"]  # 40 degrees apart
    left_uv = {(i, j): 1 + n for n, (j, i) in enumerate((j, i) for j in range(9) for i in range(5))}
    right_uv = {(i, j): 46 + n for n, (j, i) in enumerate((j, i) for j in range(9) for i in range(4, 9))}
    for j in range(8):
        for i in range(8):
            uv, normal = (left_uv, 1) if i < 4 else (right_uv, 2)
            corners = [(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)]
            refs = [f"{1 + c[1] * 9 + c[0]}/{uv[c]}/{normal}" for c in corners]
            lines += [f"f {refs[0]} {refs[1]} {refs[2]}", f"f {refs[0]} {refs[2]} {refs[3]}"]
    mesh = folder / "plane.obj"
    mesh.write_text("\n".join(lines) + "\n")
    texture = np.zeros((64, 64, 3), np.uint8)
    texture[:, :32] = (200, 60, 40)
    texture[:, 32:] = (40, 60, 200)
    Image.fromarray(texture).save(folder / "plane.png")
    return mesh, folder / "plane.png"


def test_hard_edges_over_the_wire_come_from_the_files_normals_as_locally(address: str, tmp_path: Path):
    mesh, texture = split_normal_plane(tmp_path)
    common = ["inpaint-seams", str(mesh), "--texture", str(texture), "--method", "classical"]
    assert main([*common, "--out", str(tmp_path / "local")]) == 0
    assert main([*common, "--server", address, "--out", str(tmp_path / "remote")]) == 0
    local, remote = (json.loads((tmp_path / side / "plane_report.json").read_text()) for side in ("local", "remote"))
    assert remote["seams_on_hard_edges"] == local["seams_on_hard_edges"] == local["seam_edges"] == 8
    assert local["seams_repaired"] == 0
    local_albedo, remote_albedo = (np.asarray(Image.open(tmp_path / side / "plane_albedo.png"))
                                   for side in ("local", "remote"))
    assert np.array_equal(local_albedo, remote_albedo)


def test_a_texture_file_is_read_over_the_wire_as_a_local_run_reads_it(address: str, tmp_path: Path, capsys):
    rgba = np.array(Image.open(CRATE.with_name("crate_albedo.png")).convert("RGBA"))
    rgba[10:30, 10:30, 3] = 0  # a hole, which alpha marks
    Image.fromarray(rgba).save(tmp_path / "holes.png")
    common = ["inpaint-seams", str(CRATE), "--method", "classical", "--texture", str(tmp_path / "holes.png")]
    assert main([*common, "--out", str(tmp_path / "local")]) == 0
    assert main([*common, "--server", address, "--out", str(tmp_path / "remote")]) == 0
    assert np.array_equal(albedo(tmp_path / "local"), albedo(tmp_path / "remote"))
    capsys.readouterr()

    (tmp_path / "notes.png").write_text("not a picture")
    common[-1] = str(tmp_path / "notes.png")
    errors = []
    for where in ([], ["--server", address]):
        assert main([*common, *where, "--out", str(tmp_path / "bad")]) == 2
        errors.append(capsys.readouterr().err)
    assert "notes.png: not an image texgen can read" in errors[0] and errors[0] == errors[1]


def test_no_server_is_a_clear_error(tmp_path: Path, capsys):
    port = free_port()
    code = main(["texture", str(CRATE), "--prompt", "x", "--server", f"tcp://127.0.0.1:{port}",
                 "--server-timeout", "1", "--out", str(tmp_path)])
    assert code == 2
    assert f"127.0.0.1:{port}" in capsys.readouterr().err
