"""`texgen batch` end to end on the CPU: the oracle generator (each asset its own reference, so
outputs are deterministic) and the tiny model, small sizes.

Covers manifest, sidecar and template prompts, a corrupt mesh, path traversal, skip/redo on
re-runs, --retry-failed, --status, kill -9 and resume. The Ray and server executors are in
test_batch_executors.py.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from texgen.batch.executors import LocalExecutor
from texgen.batch.ledger import LEDGER_NAME, Ledger
from texgen.batch.runner import run_batch
from texgen.batch.sources import BatchSource
from texgen.cli import main
from texgen.errors import TexgenError
from texgen.settings import TextureSettings

REPO = Path(__file__).resolve().parents[1]
CRATE, VASE = REPO / "assets" / "crate.obj", REPO / "assets" / "vase.glb"
SMALL = {"views": 2, "view_size": 64, "texture_size": 64, "steps": 2, "device": "cpu"}
SMALL_FLAGS = ["--views", "2", "--view-size", "64", "--texture-size", "64", "--steps", "2", "--device", "cpu"]
SIDECAR_PROMPT = 'a glazed <b>vase</b> & "jar"'


def oracle(path: Path) -> str:
    return f"oracle:{path}"


def crate_folder(root: Path, count: int) -> Path:
    """``count`` copies of the crate in nested folders (OBJ + its MTL and texture)."""
    for index in range(count):
        folder = root / f"shelf{index % 2}" / ("deep" if index >= 2 else "")
        folder.mkdir(parents=True, exist_ok=True)
        for suffix in (".obj", ".mtl"):
            shutil.copy(CRATE.with_suffix(suffix), folder / f"crate{index}{suffix}")
        shutil.copy(REPO / "assets" / "crate_albedo.png", folder / "crate_albedo.png")
    return root


def run(source: BatchSource, **kwargs):
    console = Console(file=io.StringIO(), width=120)
    summary = run_batch(source, LocalExecutor, console=console, command="test", **kwargs)
    return summary, console.file.getvalue()


def albedo(dst: Path, key: str) -> np.ndarray:
    relative = Path(key)
    return np.asarray(Image.open(dst / relative.parent / f"{relative.stem}_albedo.png"))


def done_events(dst: Path) -> dict[str, int]:
    with Ledger(dst / LEDGER_NAME, readonly=True) as ledger:
        counts: dict[str, int] = {}
        for event in ledger.events():
            if event["state"] == "done":
                counts[event["key"]] = counts.get(event["key"], 0) + 1
        return counts


@pytest.fixture
def library(tmp_path: Path, tiny_model_dir) -> tuple[Path, Path]:
    """SRC with a manifest row per asset: manifest, sidecar and template prompts, a corrupt mesh,
    a path out of SRC, one asset on the tiny model."""
    src = crate_folder(tmp_path / "src", 3)
    shutil.copy(VASE, src / "vase.glb")
    (src / "vase.prompt.txt").write_text(SIDECAR_PROMPT)
    (src / "shelf1" / "broken.obj").write_text("this is not a mesh\n")
    (tmp_path / "outside.obj").write_text("v 0 0 0\n")
    rows = [
        {"path": "shelf0/crate0.obj", "prompt": "a pine crate", "seed": 3, "model": oracle(CRATE)},
        {"path": "shelf1/crate1.obj", "prompt": "a painted crate", "model": str(tiny_model_dir("sd15-controlnet"))},
        {"path": "vase.glb", "model": oracle(VASE)},  # sidecar prompt
        {"path": "shelf0/deep/crate2.obj", "model": oracle(CRATE)},  # template prompt
        {"path": "shelf1/broken.obj", "prompt": "junk", "model": oracle(CRATE)},
        {"path": "../outside.obj", "prompt": "escape", "model": oracle(CRATE)},
    ]
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as stream:
        writer = csv.DictWriter(stream, ["path", "prompt", "seed", "model"])
        writer.writeheader()
        writer.writerows(rows)
    return src, manifest


def test_batch_records_skips_redoes_and_retries(library: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    src, manifest = library
    dst = tmp_path / "dst"
    defaults = TextureSettings(prompt="{stem}, {parent}, weathered", **SMALL)
    source = BatchSource(src, dst, defaults, manifest=manifest)
    summary, log = run(source)
    assert (summary.assets, summary.done, summary.failed) == (6, 4, 2), log
    good = ["shelf0/crate0.obj", "shelf0/deep/crate2.obj", "shelf1/crate1.obj", "vase.glb"]
    for key in good:
        relative = Path(key)
        names = {p.name for p in (dst / relative.parent).iterdir() if p.name.startswith(relative.stem + "_")
                 or p.stem == relative.stem}
        assert names == {f"{relative.stem}{end}" for end in (".glb", ".obj", ".mtl", "_albedo.png", "_report.json",
                                                              "_preview.png")}, key
    assert not list(tmp_path.glob("*.glb")) and not (tmp_path / "outside.glb").exists()
    with Ledger(dst / LEDGER_NAME, readonly=True) as ledger:
        rows = {row.key: row for row in ledger.rows()}
    assert rows["vase.glb"].prompt == SIDECAR_PROMPT and rows["shelf0/crate0.obj"].prompt == "a pine crate"
    assert rows["shelf0/deep/crate2.obj"].prompt == "crate2, deep, weathered"
    assert rows["shelf1/broken.obj"].error == "broken.obj: the file contains no triangle mesh"
    assert rows["../outside.obj"].error.startswith("refused: '..'")
    crate0 = rows["shelf0/crate0.obj"]
    # the copies name crate.mtl, which is not beside them: they read no other file, and a GLB none
    assert crate0.input_sha256 == hashlib.sha256(CRATE.read_bytes()).hexdigest()
    assert rows["vase.glb"].input_sha256 == hashlib.sha256(VASE.read_bytes()).hexdigest()
    assert set(crate0.outputs) == {"glb", "obj", "mtl", "albedo", "report", "preview"} and crate0.timings["texture"] > 0
    page = (dst / "index.html").read_text()
    assert "&lt;b&gt;vase&lt;/b&gt; &amp; &quot;jar&quot;" in page and "<b>vase" not in page
    assert 'src="shelf0/crate0_preview.png"' in page

    # the same command again: nothing painted
    stamps = {key: (dst / rows[key].outputs["albedo"]["path"]).stat().st_mtime_ns for key in good}
    summary, _ = run(source)
    assert (summary.done, summary.skipped, summary.failed_before) == (0, 4, 1)

    # change one prompt: only that asset is redone
    text = manifest.read_text().replace("a pine crate", "a charred crate")
    manifest.write_text(text)
    summary, _ = run(source)
    assert (summary.done, summary.skipped) == (1, 3)
    assert done_events(dst) == {key: 1 + (key == "shelf0/crate0.obj") for key in good}
    for key in good[1:]:
        assert (dst / rows[key].outputs["albedo"]["path"]).stat().st_mtime_ns == stamps[key]

    # --retry-failed tries the corrupt mesh again; it fails again, and the batch still finishes
    summary, _ = run(source, retry_failed=True)
    assert (summary.done, summary.failed, summary.skipped) == (0, 2, 4)
    with Ledger(dst / LEDGER_NAME, readonly=True) as ledger:
        assert ledger.get("shelf1/broken.obj").attempts == 2

    assert main(["batch", "--status", str(dst)]) == 1
    assert "shelf1/broken.obj" in capsys.readouterr().out


def test_an_edited_map_or_buffer_redoes_its_asset(tmp_path: Path) -> None:
    """An asset's input is its mesh and the files it reads: an OBJ's material and map, a .gltf's buffers."""
    import trimesh

    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "gltf").mkdir(parents=True)
    for suffix in (".obj", ".mtl"):
        shutil.copy(CRATE.with_suffix(suffix), src / f"crate{suffix}")
    shutil.copy(REPO / "assets" / "crate_albedo.png", src / "crate_albedo.png")
    for name, data in trimesh.load(VASE).export(file_type="gltf").items():
        (src / "gltf" / name).write_bytes(data)
    source = BatchSource(src, dst, TextureSettings(prompt="{stem}", model=oracle(CRATE), **SMALL))
    summary, _ = run(source)
    assert (summary.done, summary.failures) == (2, [])
    files = "".join(f"{name}\0{hashlib.sha256((src / name).read_bytes()).hexdigest()}\n"
                    for name in ("crate.obj", "crate.mtl", "crate_albedo.png"))
    with Ledger(dst / LEDGER_NAME, readonly=True) as ledger:
        assert ledger.get("crate.obj").input_sha256 == hashlib.sha256(files.encode()).hexdigest()
    assert run(source)[0].skipped == 2

    image = np.array(Image.open(src / "crate_albedo.png"))
    Image.fromarray(255 - image).save(src / "crate_albedo.png")  # the map edited, the OBJ and MTL untouched
    scaled = trimesh.load(VASE)
    for geometry in scaled.geometry.values():
        geometry.apply_scale(1.5)
    for name, data in scaled.export(file_type="gltf").items():  # new positions in the buffers, the JSON untouched
        if name.endswith(".bin"):
            (src / "gltf" / name).write_bytes(data)
    summary, _ = run(source)
    assert (summary.done, summary.skipped) == (2, 0)


def test_template_prompts_from_the_cli(tmp_path: Path) -> None:
    src = crate_folder(tmp_path / "src", 2)
    dst = tmp_path / "dst"
    code = main(["batch", str(src), "--out", str(dst), "--prompt", "{stem} from {parent}", "--model", oracle(CRATE),
                 "--glob", "shelf0/*.obj", *SMALL_FLAGS])
    assert code == 0
    with Ledger(dst / LEDGER_NAME, readonly=True) as ledger:
        assert [(row.key, row.prompt, row.state) for row in ledger.rows()] == [
            ("shelf0/crate0.obj", "crate0 from shelf0", "done")]


def test_kill_9_then_resume_matches_a_clean_run(tmp_path: Path) -> None:
    src = crate_folder(tmp_path / "src", 5)
    dst, clean = tmp_path / "dst", tmp_path / "clean"
    args = [str(src), "--prompt", "{stem}, weathered", "--model", oracle(CRATE), *SMALL_FLAGS]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen([sys.executable, "-m", "texgen", "batch", *args, "--out", str(dst)], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with Ledger(dst / LEDGER_NAME, readonly=True) as ledger:
                    counts = ledger.counts()
            except TexgenError:  # not made yet
                counts = {"done": 0, "running": 0}
            if counts["done"] >= 2 and counts["running"]:
                break
            time.sleep(0.05)
        assert process.poll() is None, process.stdout.read().decode()
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    with Ledger(dst / LEDGER_NAME, readonly=True) as ledger:
        before = ledger.counts()
    assert before["running"] >= 1 and before["done"] < 5, before

    source = BatchSource(src, dst, TextureSettings(prompt="{stem}, weathered", model=oracle(CRATE), **SMALL))
    summary, log = run(source)
    assert summary.done == 5 - before["done"] and summary.skipped == before["done"], log
    keys = [f"shelf{i % 2}/{'deep/' if i >= 2 else ''}crate{i}.obj" for i in range(5)]
    assert done_events(dst) == dict.fromkeys(keys, 1)  # each asset done exactly once
    assert not list(dst.rglob("*.tmp"))

    run(BatchSource(src, clean, source.defaults))
    for key in keys:
        np.testing.assert_array_equal(albedo(dst, key), albedo(clean, key))


def test_loading_flags_reach_the_local_executor_and_are_refused_for_servers(tmp_path: Path, capsys,
                                                                          tiny_model_dir) -> None:
    src = crate_folder(tmp_path / "src", 1)
    dst = tmp_path / "dst"
    model = str(tiny_model_dir("sd15-controlnet"))  # a model loads with the flags (the oracle loads none)
    args = ["batch", str(src), "--out", str(dst), "--prompt", "a crate", "--model", model, *SMALL_FLAGS]
    assert main([*args, "--scheduler", "ddim"]) == 0
    reports = list(dst.rglob("*_report.json"))
    assert len(reports) == 1 and json.loads(reports[0].read_text())["loading"]["scheduler"] == "ddim"
    capsys.readouterr()
    assert main([*args, "--executor", "server", "--server", "tcp://127.0.0.1:9", "--cpu-offload"]) == 2
    error = capsys.readouterr().err
    assert "--cpu-offload" in error and "texgen serve" in error
