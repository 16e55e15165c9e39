"""Batch planning without texturing: manifests, sidecars, templates, path safety, the ledger."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from texgen.batch.ledger import BatchLock, InputFacts, Ledger, options_digest
from texgen.batch.report import write_index
from texgen.batch.sources import BatchSource, plan_assets, stale_temp_files
from texgen.errors import ConfigError, TexgenError
from texgen.settings import TextureSettings


def touch(path: Path, text: str = "v 0 0 0\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    for name in ("crate.obj", "props/barrel.obj", "props/deep/lamp.glb", "props/notes.txt", ".hidden/x.obj"):
        touch(root / name)
    return root


def plan(src: Path, dst: Path, prompt: str = "", **kwargs) -> dict:
    source = BatchSource(src, dst, TextureSettings(prompt=prompt, seed=3), **kwargs)
    return {asset.key: asset for asset in plan_assets(source)}


def test_glob_template_and_sidecar(src: Path, tmp_path: Path) -> None:
    touch(src / "props" / "barrel.prompt.txt", "an oak barrel,\n  iron hoops\n")
    touch(src / "crate.obj.prompt.txt", "a pine crate")
    assets = plan(src, src / "out", prompt="{stem} in {parent}, {name}, {relpath}")
    assert list(assets) == ["crate.obj", "props/barrel.obj", "props/deep/lamp.glb"]  # hidden, txt, DST left out
    assert assets["crate.obj"].settings.prompt == "a pine crate"
    assert assets["props/barrel.obj"].settings.prompt == "an oak barrel, iron hoops"
    assert assets["props/barrel.obj"].origin == "sidecar"
    lamp = assets["props/deep/lamp.glb"]
    assert lamp.settings.prompt == "lamp in deep, lamp.glb, props/deep/lamp.glb" and lamp.origin == "template"
    assert lamp.out_dir == (src / "out" / "props" / "deep").resolve() and lamp.name == "lamp"
    assert lamp.settings.seed == 3
    only_glb = plan(src, tmp_path / "dst", prompt="x", glob="**/*.glb")
    assert list(only_glb) == ["props/deep/lamp.glb"]


def test_no_prompt_is_recorded_not_fatal(src: Path, tmp_path: Path) -> None:
    assets = plan(src, tmp_path / "dst")
    assert all(asset.error.startswith("no prompt") for asset in assets.values())


@pytest.mark.parametrize("template, field", [("{stem} {colour}", "colour"), ("{0}", "0")])
def test_template_unknown_field(src: Path, tmp_path: Path, template: str, field: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown field {{{field}}}"):
        plan(src, tmp_path / "dst", prompt=template)
    assert plan(src, tmp_path / "dst", prompt="{{literal}} {stem}")["crate.obj"].settings.prompt == "{literal} crate"


def test_csv_manifest_types_and_precedence(src: Path, tmp_path: Path) -> None:
    touch(src / "crate.prompt.txt", "from the sidecar")
    manifest = touch(tmp_path / "m.csv", "path,prompt,seed,views,direction_prompts,guidance,negative_prompt\n"
                                         "crate.obj,,7,auto,false,,\n"
                                         "props/barrel.obj,123,8,4,true,3,blurry\n")
    assets = plan(src, tmp_path / "dst", prompt="{stem}", manifest=manifest)
    assert list(assets) == ["crate.obj", "props/barrel.obj"]  # the manifest lists the assets
    crate, barrel = assets["crate.obj"].settings, assets["props/barrel.obj"].settings
    assert (crate.prompt, crate.seed, crate.views, crate.direction_prompts) == ("from the sidecar", 7, "auto", False)
    assert (barrel.prompt, barrel.seed, barrel.views, barrel.guidance) == ("123", 8, 4, 3.0)
    assert barrel.negative_prompt == "blurry" and assets["props/barrel.obj"].origin.endswith("line 3")


@pytest.mark.parametrize("suffix, text, message", [
    (".csv", "path,prompt,sed\ncrate.obj,a,1\nprops/barrel.obj,b,2\n", r"m\.csv line 2: .*unknown key 'sed'"),
    (".csv", "path,steps\ncrate.obj,many\n", r"line 2: key 'steps' must be int, got 'many'"),
    (".jsonl", '{"path": "crate.obj", "prompt": "a"}\n\n{"path": "props/barrel.obj", "steps": "2"}\n',
     r"m\.jsonl line 3: .*key 'steps' must be int"),
    (".jsonl", '{"path": "crate.obj"\n', r"line 1: not valid JSON"),
    (".toml", '[[asset]]\npath = "crate.obj"\nprompt = "a"\n[[asset]]\npath = "props/barrel.obj"\nview_size = 65\n',
     r"\[\[asset\]\] 2: .*view_size: must be a multiple of 8"),
    (".toml", 'path = "crate.obj"\n', r"expected only \[\[asset\]\] tables"),
    (".csv", "path,prompt\ncrate.obj,a\n./crate.obj,b\n", r"line 3: path 'crate.obj' repeats .*line 2"),
    (".csv", "prompt\na\n", r"must name the columns, one of them 'path'"),
    (".yaml", "", r"unknown manifest format"),
])
def test_bad_manifest_names_row_and_key(src: Path, tmp_path: Path, suffix: str, text: str, message: str) -> None:
    manifest = touch(tmp_path / f"m{suffix}", text)
    with pytest.raises(ConfigError, match=message):
        plan(src, tmp_path / "dst", manifest=manifest)


def test_jsonl_and_toml_manifests(src: Path, tmp_path: Path) -> None:
    jsonl = touch(tmp_path / "m.jsonl", json.dumps({"path": "props/deep/lamp.glb", "prompt": "brass", "seed": 4}))
    assert plan(src, tmp_path / "dst", manifest=jsonl)["props/deep/lamp.glb"].settings.seed == 4
    toml = touch(tmp_path / "m.toml", '[[asset]]\npath = "crate.obj"\nprompt = "pine"\nsteps = 3\n')
    assert plan(src, tmp_path / "dst", manifest=toml)["crate.obj"].settings.steps == 3


def test_path_traversal_is_refused(src: Path, tmp_path: Path) -> None:
    outside = touch(tmp_path / "outside" / "secret.obj")
    os.symlink(outside, src / "link.obj")
    dst = tmp_path / "dst"
    (dst / "props").mkdir(parents=True)
    os.symlink(tmp_path / "outside", dst / "props" / "deep")  # an output folder pointing out of DST
    rows = ["../outside/secret.obj", str(outside), "props/../../outside/secret.obj", "link.obj",
            "props/deep/lamp.glb", "C:\\\\evil\\\\x.obj", "crate.obj"]
    manifest = touch(tmp_path / "m.jsonl", "\n".join(json.dumps({"path": row, "prompt": "x"}) for row in rows))
    assets = plan(src, dst, manifest=manifest)
    refused = {key: asset.error for key, asset in assets.items() if asset.error}
    assert set(refused) == set(rows) - {"crate.obj"}
    assert all(error.startswith("refused: ") for error in refused.values()), refused
    assert "outside SRC" in refused["link.obj"] and "outside DST" in refused["props/deep/lamp.glb"]
    assert not assets["crate.obj"].error


def test_a_rows_starting_texture_is_relative_to_src_and_stays_inside(src: Path, tmp_path: Path) -> None:
    touch(src / "props" / "old.png")
    outside = touch(tmp_path / "outside" / "secret.png")
    rows = [("crate.obj", "props/old.png"), ("props/barrel.obj", "../outside/secret.png"),
            ("props/deep/lamp.glb", str(outside))]
    manifest = touch(tmp_path / "m.jsonl", "\n".join(json.dumps({"path": mesh, "prompt": "x", "init_texture": start})
                                                     for mesh, start in rows))
    assets = plan(src, tmp_path / "dst", manifest=manifest)
    assert assets["crate.obj"].settings.init_texture == str(src / "props" / "old.png")
    assert "refused: init_texture '../outside/secret.png': '..'" in assets["props/barrel.obj"].error
    assert "absolute path" in assets["props/deep/lamp.glb"].error
    own = touch(tmp_path / "own.jsonl", json.dumps({"path": "crate.obj", "prompt": "x", "init_texture": "mesh"}))
    assert plan(src, tmp_path / "dst", manifest=own)["crate.obj"].settings.init_texture == "mesh"


def test_dst_equal_to_src_and_glob_with_manifest(src: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is SRC itself"):
        plan(src, src, prompt="x")
    with pytest.raises(ConfigError, match="do not mix"):
        plan(src, tmp_path / "dst", manifest=touch(tmp_path / "m.csv", "path\ncrate.obj\n"), glob="*.obj")
    with pytest.raises(ConfigError, match="--glob"):
        plan(src, tmp_path / "dst", prompt="x", glob="../*")


def test_colliding_output_names_get_the_extension(src: Path, tmp_path: Path) -> None:
    touch(src / "crate.glb")
    assets = plan(src, tmp_path / "dst", prompt="x", glob="*")
    assert (assets["crate.glb"].name, assets["crate.obj"].name) == ("crate_glb", "crate_obj")


def test_stale_temp_files(tmp_path: Path) -> None:
    stale = touch(tmp_path / ".crate.glb.1a2b3c4d.tmp")
    touch(tmp_path / ".other.glb.1a2b3c4d.tmp")
    assert stale_temp_files(tmp_path, ["crate.glb", "crate.obj"]) == [stale]


def test_ledger_states_events_and_lock(tmp_path: Path) -> None:
    text, digest = options_digest({"prompt": "a", "seed": 1})
    facts = InputFacts("abc", 10, 5, "a", digest, text)
    with Ledger(tmp_path / "l.sqlite") as ledger:
        run = ledger.begin_run("texgen batch", "local")
        ledger.plan([("crate.obj", "/src/crate.obj", "", "crate", facts)])
        ledger.start("crate.obj", run, "local")
        ledger.done("crate.obj", run, {"albedo": {"path": "crate_albedo.png", "sha256": "f", "bytes": 1}},
                    {"texture": 1.0}, "local")
        ledger.fail("../evil.obj", run, "refused: '..'")
        row = ledger.get("crate.obj")
        assert (row.state, row.attempts, row.same_inputs(facts), row.outputs["albedo"]["bytes"]) == ("done", 1, True, 1)
        assert ledger.counts() == {"pending": 0, "running": 0, "done": 1, "failed": 1}
        assert [e["state"] for e in ledger.events("crate.obj")] == ["running", "done"]
        with pytest.raises(TexgenError, match="no asset"):
            ledger.start("missing.obj", run)
        ledger.end_run(run, {"done": 1})
        assert ledger.runs()[0]["summary"] == {"done": 1}
    with Ledger(tmp_path / "l.sqlite", readonly=True) as reader:
        assert reader.counts()["done"] == 1
    with pytest.raises(TexgenError, match="no batch ledger"):
        Ledger(tmp_path / "none.sqlite", readonly=True)
    with BatchLock(tmp_path):
        with pytest.raises(TexgenError, match="another texgen batch"):
            with BatchLock(tmp_path):
                pass


def test_lock_of_a_killed_batch_is_free_again(tmp_path: Path) -> None:
    """kill -9 of the batch holding the lock leaves nothing stuck: the OS releases it."""
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from texgen.batch.ledger import BatchLock\n"
                               "with BatchLock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)",
                               str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(TexgenError, match="another texgen batch"):
            with BatchLock(tmp_path):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    with BatchLock(tmp_path):
        pass


def test_index_escapes_prompts_and_links_relatively(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite") as ledger:
        text, digest = options_digest({})
        ledger.plan([("a&b/x.obj", "/s", "a&b", "x", InputFacts("h", 1, 1, '<script>alert("x")</script>', digest,
                                                                   text))])
        ledger.start("a&b/x.obj", 1)
        ledger.done("a&b/x.obj", 1, {"preview": {"path": "a&b/x preview.png", "sha256": "", "bytes": 0}}, {})
        page = write_index(tmp_path, ledger.rows()).read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert 'src="a%26b/x%20preview.png"' in page
