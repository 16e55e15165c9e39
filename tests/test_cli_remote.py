"""`texgen texture --server` and `texgen inpaint-seams --server` write what a local run writes."""

from __future__ import annotations

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
