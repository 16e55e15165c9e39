"""The paint loop: trimap rules, the oracle round trip through the loop, tiny models end to end."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from texgen.camera import default_views
from texgen.errors import Cancelled, ConfigError, MeshError
from texgen.eval import OracleGenerator, psnr, resample_reference, roundtrip
from texgen.mesh import load_mesh
from texgen.pipeline import (UNPAINTED_GREY, ProjectionSettings, Trimap, build_trimap, paint_view, pixel_mask,
                             texture_mesh)
from texgen.progress import CancelToken, Timer
from texgen.project import TextureState, sample_view
from texgen.render import Renderer
from texgen.settings import TextureSettings
from texgen.texels import TexelMap

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SAMPLES = sorted(p for p in ASSETS.iterdir() if p.suffix in (".obj", ".ply", ".glb"))


@pytest.fixture(scope="module")
def crate():
    return load_mesh(ASSETS / "crate.obj")


def test_oracle_through_the_loop_matches_the_round_trip(crate):
    size, views = 256, 6
    result = texture_mesh(crate, "crate", generator=OracleGenerator(crate), views=views, view_size=size,
                          texture_size=size)
    _, images = roundtrip(crate, views=views, view_size=size, texture_size=size)
    texels = TexelMap.build(crate, size)
    single = ~texels.overlap.numpy()
    reference = texels.gather(resample_reference(crate.texture, size))[single]
    painted = psnr(texels.gather(result.texture / 255.0)[single], reference)
    baked = psnr(texels.gather(images["filled"])[single], reference)
    assert painted > 30
    assert abs(painted - baked) < 1.0, (painted, baked)
    assert result.report["coverage"] == 1.0


def test_keep_texels_are_never_touched(crate):
    settings = TextureSettings(prompt="crate", view_size=128, texture_size=128, steps=1).validate()
    texels = TexelMap.build(crate, 128)
    state = TextureState(texels)
    generator = OracleGenerator(crate, perturb=True)  # every view disagrees a little with the others
    cameras = default_views(6, 128)
    with Renderer(crate) as renderer:
        for index, camera in enumerate(cameras):
            before = state.color.clone()
            buffers = renderer.render([camera])
            trimap = build_trimap(state, sample_view(texels, camera, buffers.depth[0], None, ProjectionSettings(),
                                                     buffers.normals[0]))
            paint_view(index, len(cameras), camera, crate, renderer, state, generator, settings,
                       ProjectionSettings(), Timer(), lambda event: None, CancelToken())
            keep = ~(trimap.generate | trimap.refine)
            assert torch.equal(state.color[keep], before[keep]), f"view {index} changed keep texels"
            if index:
                assert (trimap.generate | trimap.refine).any()


def test_a_first_view_generates_before_the_texture_state_is_asked_for(crate):
    """The paint loop hands the first view of a schedule a function for the state, so that the model
    runs while the UV layout still rasterises: the same paint as with the state at hand."""
    settings = TextureSettings(prompt="crate", view_size=96, texture_size=96, steps=1).validate()
    camera = default_views(1, 96)[0]
    calls = []

    class Recording(OracleGenerator):
        def generate(self, *args, **kwargs):
            calls.append("generate")
            return super().generate(*args, **kwargs)

    def run(deferred: bool) -> TextureState:
        state = TextureState(TexelMap.build(crate, 96))

        def later() -> TextureState:
            calls.append("state")
            return state

        with Renderer(crate) as renderer:
            paint_view(0, 1, camera, crate, renderer, later if deferred else state, Recording(crate), settings,
                       ProjectionSettings(), Timer(), lambda event: None, CancelToken())
        return state

    direct = run(False)
    calls.clear()
    deferred = run(True)
    assert calls == ["generate", "state"]
    assert deferred.painted.any()
    for name in ("color", "weight", "best_cos", "best_view"):
        assert torch.equal(getattr(direct, name), getattr(deferred, name)), name


def test_pixel_mask_renders_the_paint_and_the_trimap_into_the_view(crate):
    texels = TexelMap.build(crate, 128)
    camera = default_views(1, 96)[0]
    nothing, everything = torch.zeros(texels.count, dtype=torch.bool), torch.ones(texels.count, dtype=torch.bool)
    with Renderer(crate) as renderer:
        foreground = renderer.render([camera]).mask[0]
        state = TextureState(texels)
        image, mask = pixel_mask(renderer, camera, foreground, state, Trimap(everything, nothing), 0.6)
        assert image.shape == (3, 96, 96) and (image[:, ~foreground] == UNPAINTED_GREY).all()
        assert torch.allclose(image[:, foreground], torch.tensor(128 / 255))  # nothing painted: grey, all generated
        assert (mask[foreground] == 1).all()

        state.color[:] = torch.tensor([0.2, 0.9, 1.5])  # painted everywhere; colours are clipped to [0, 1]
        state.weight[:], state.best_view[:] = 1.0, 0  # as view 0 would have painted them
        image, mask = pixel_mask(renderer, camera, foreground, state, Trimap(nothing, nothing), 0.6)
        expected = torch.tensor([51, 230, 255]) / 255.0  # the 8-bit texture's values
        exact = (image[:, foreground].T - expected).abs().amax(dim=1) < 1e-6  # mipmaps blend in grey at the borders
        assert exact.float().mean() > 0.8
        assert (image[:, ~foreground] == UNPAINTED_GREY).all() and (mask == 0).all()

        _, mask = pixel_mask(renderer, camera, foreground, state, Trimap(nothing, everything), 0.6)
        assert (mask[foreground] == 0.6).all() and (mask[~foreground] == 0).all()


def test_pixel_mask_gives_a_starting_texture_its_own_strength(crate):
    texels = TexelMap.build(crate, 128)
    camera = default_views(1, 96)[0]
    everything = torch.ones(texels.count, dtype=torch.bool)
    with Renderer(crate) as renderer:
        buffers = renderer.render([camera])
        foreground = buffers.mask[0]
        state = TextureState(texels)
        state.start_from(torch.full((texels.count, 3), 0.3))
        assert state.painted.all() and not state.seen.any()
        trimap = build_trimap(state, sample_view(texels, camera, buffers.depth[0], None, ProjectionSettings(),
                                                 buffers.normals[0]))
        assert not trimap.generate.any() and trimap.refine.any()  # nothing to generate: the view refines
        _, mask = pixel_mask(renderer, camera, foreground, state, Trimap(~everything, everything), 0.4, 0.7)
        assert (mask[foreground] == 0.7).all() and (mask[~foreground] == 0).all()
        state.best_view[:] = 0  # as if a view had painted every texel: its refine strength again
        _, mask = pixel_mask(renderer, camera, foreground, state, Trimap(~everything, everything), 0.4, 0.7)
        assert (mask[foreground] == 0.4).all()


def _flat_png(path: Path, color: tuple[int, int, int], size: int = 96) -> Path:
    from PIL import Image

    Image.fromarray(np.full((size, size, 3), color, np.uint8)).save(path)
    return path


def test_a_starting_texture_is_repainted_where_views_see_it_and_kept_elsewhere(crate, tmp_path: Path):
    start = _flat_png(tmp_path / "magenta.png", (255, 0, 255))
    size = 128
    result = texture_mesh(crate, "crate", generator=OracleGenerator(crate), views=2, view_size=size,
                          texture_size=size, init_texture=str(start), init_strength=1.0)
    report = result.report
    assert all(v["generated_fraction"] == 0 and v["refined_fraction"] > 0.05 for v in report["views"])
    assert 0.2 < report["coverage_views"] < 0.9 and report["coverage"] == 1.0
    assert any("started from a 96x96 texture, resampled" in note for note in report["mesh"]["notes"])
    texels = TexelMap.build(crate, size)
    painted = texels.gather(result.texture).astype(int)
    kept = (np.abs(painted - (255, 0, 255)) <= 1).all(axis=1)
    # what no view saw keeps the starting texture (the seam smoothing aside); the rest is the views' paint
    assert abs(kept.mean() - (1 - report["coverage_views"])) < 0.05
    single = ~texels.overlap.numpy() & ~kept
    reference = texels.gather(resample_reference(crate.texture, size))
    assert psnr(painted[single] / 255.0, reference[single]) > 25
    # the preview shows the starting texture beside the result: a whole tile of it
    magenta = (np.abs(result.preview.astype(int) - (255, 0, 255)) <= 2).all(axis=2)
    assert (magenta.sum(axis=1) >= 250).sum() >= 200
    # views=auto counts texels no view painted as new: it paints, then stops
    auto = texture_mesh(crate, "crate", generator=OracleGenerator(crate), views="auto", max_views=3,
                        view_size=size, texture_size=size, init_texture=str(start), init_strength=1.0)
    assert 1 <= len(auto.report["views"]) <= 3


def test_starting_texture_errors_name_the_problem(crate, tmp_path: Path):
    from texgen.errors import ImageError

    with pytest.raises(ImageError, match="no base-colour texture to start from.*--init-texture PNG"):
        texture_mesh(dataclasses.replace(crate, texture=None), "x", generator=OracleGenerator(crate),
                     init_texture="mesh")
    start = _flat_png(tmp_path / "grey.png", (128, 128, 128))
    for mesh, unwrap in ((ASSETS / "knot.ply", "auto"), (crate, "always")):  # no image lies on UVs texgen made
        with pytest.raises(ImageError, match="start from lies on the mesh's own UVs, and these were made by texgen"):
            texture_mesh(mesh, "x", generator=OracleGenerator(crate), init_texture=str(start), unwrap=unwrap)
    # the caller's Mesh was unwrapped in a copy: it keeps its UVs, texture and notes
    assert crate.texture is not None and not crate.unwrapped and not any("xatlas" in n for n in crate.notes)
    with pytest.raises(ImageError, match="texture file not found: .*nothing.png"):
        texture_mesh(crate, "x", generator=OracleGenerator(crate), init_texture=str(tmp_path / "nothing.png"))
    with pytest.raises(ConfigError, match="init_strength: must be in \\[0, 1\\], got 1.5"):
        texture_mesh(crate, "x", generator=OracleGenerator(crate), init_texture="mesh", init_strength=1.5)


def test_auto_views_stop_at_the_budget_or_when_nothing_is_new(crate):
    result = texture_mesh(crate, "crate", generator=OracleGenerator(crate), views="auto", max_views=4,
                          view_size=128, texture_size=128)
    views = result.report["views"]
    assert 1 <= len(views) <= 4
    assert views[0]["generated_fraction"] > views[-1]["generated_fraction"]
    assert result.report["coverage"] == 1.0


def test_direction_words_are_added_to_the_prompt(crate):
    result = texture_mesh(crate, "a crate", generator=OracleGenerator(crate), views=2, view_size=64,
                          texture_size=64)
    assert [v["prompt"] for v in result.report["views"]] == ["a crate, front view", "a crate, back view"]
    plain = texture_mesh(crate, "a crate", generator=OracleGenerator(crate), views=1, view_size=64,
                         texture_size=64, direction_prompts=False)
    assert plain.report["views"][0]["prompt"] == "a crate"


def test_cancel_raises_and_bad_settings_name_the_key(crate):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        texture_mesh(crate, "x", generator=OracleGenerator(crate), cancel=token, view_size=64, texture_size=64)
    with pytest.raises(ConfigError, match="view_size"):
        texture_mesh(crate, "x", generator=OracleGenerator(crate), view_size=100)
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        texture_mesh(crate, "x", generator=OracleGenerator(crate), colour="red")


def test_no_uvs_and_unwrap_never_is_refused():
    with pytest.raises(MeshError, match="no UV map"):
        texture_mesh(ASSETS / "knot.ply", "x", unwrap="never", generator=object())


@pytest.fixture(scope="module")
def tiny_sd15(tiny_model_dir):
    return tiny_model_dir("sd15-controlnet")


def test_tiny_model_is_deterministic_per_seed(crate, tiny_sd15):
    def run(seed: int) -> np.ndarray:
        return texture_mesh(crate, "crate", model=str(tiny_sd15), views=2, view_size=64, texture_size=64,
                            steps=2, seed=seed).texture

    first = run(1)
    assert np.array_equal(first, run(1))
    assert not np.array_equal(first, run(2))


@pytest.mark.parametrize("asset", SAMPLES, ids=[p.name for p in SAMPLES])
def test_cli_end_to_end_with_a_tiny_model(asset: Path, tiny_sd15, tmp_path: Path):
    import trimesh

    from texgen.cli import main

    out = tmp_path / "out"
    code = main(["texture", str(asset), "--prompt", "a test object", "--model", str(tiny_sd15), "--views", "3",
                 "--view-size", "64", "--texture-size", "64", "--steps", "2", "--out", str(out)])
    assert code == 0
    stem = asset.stem
    report = json.loads((out / f"{stem}_report.json").read_text())
    assert report["coverage"] == 1.0
    assert report["seconds"]["diffusion"] > 0
    for suffix in (".glb", ".obj", ".mtl", "_albedo.png", "_preview.png"):
        assert (out / f"{stem}{suffix}").is_file()
    source = load_mesh(asset)
    glb = trimesh.load(out / f"{stem}.glb", force="mesh", process=False)
    assert glb.visual.material.baseColorTexture is not None
    # the GLB holds the same corners and UVs as the mesh texgen painted (after unwrapping, if any)
    painted = load_mesh(out / f"{stem}.obj")
    exported = np.asarray(glb.visual.uv)[np.asarray(glb.faces)]
    assert np.allclose(exported, painted.uvs[painted.uv_faces], atol=1e-6)
    assert np.allclose(np.asarray(glb.vertices)[np.asarray(glb.faces)], source.positions[source.faces], atol=1e-5)
    if source.has_uvs:
        assert np.allclose(painted.uvs[painted.uv_faces], source.uvs[source.uv_faces], atol=1e-9)
    else:
        assert any("xatlas" in note for note in report["mesh"]["notes"])
    # a second run refuses to overwrite, before painting anything
    assert main(["texture", str(asset), "--prompt", "x", "--model", str(tiny_sd15), "--out", str(out)]) == 2


def test_cli_init_texture_at_strength_zero_keeps_the_texture(tiny_sd15, tmp_path: Path):
    """--init-strength 0: the views change nothing they see, so the mesh's own texture comes back."""
    from PIL import Image

    from texgen.cli import main

    size = 64
    code = main(["texture", str(ASSETS / "crate.obj"), "--prompt", "crate", "--model", str(tiny_sd15), "--views",
                 "4", "--view-size", "256", "--texture-size", str(size), "--steps", "1", "--init-texture", "mesh",
                 "--init-strength", "0", "--out", str(tmp_path)])
    assert code == 0
    crate = load_mesh(ASSETS / "crate.obj")
    texels = TexelMap.build(crate, size)
    out = texels.gather(np.asarray(Image.open(tmp_path / "crate_albedo.png").convert("RGB")) / 255.0)
    assert psnr(out, texels.gather(resample_reference(crate.texture, size))) > 40
    report = json.loads((tmp_path / "crate_report.json").read_text())
    assert report["settings"]["init_texture"] == "mesh" and report["settings"]["init_strength"] == 0


def test_toml_config_supplies_defaults_and_bad_keys_are_named(tmp_path: Path, capsys):
    from texgen.cli import main

    config = tmp_path / "studio.toml"
    config.write_text('[texture]\nview_size = 64\ntexture_size = 64\nviews = 1\nprompt = "crate"\n'
                      f'model = "oracle:{ASSETS / "crate.obj"}"\n[loading]\nvae_slicing = true\n')
    assert main(["texture", str(ASSETS / "crate.obj"), "--config", str(config), "--out", str(tmp_path / "o")]) == 0
    report = json.loads((tmp_path / "o" / "crate_report.json").read_text())
    assert report["settings"]["view_size"] == 64 and report["settings"]["prompt"] == "crate"
    assert report["generator"].startswith("oracle:") and "loading" not in report  # the oracle loads no model
    config.write_text("[texture]\nview_sise = 64\n")
    assert main(["texture", str(ASSETS / "crate.obj"), "--config", str(config), "--out", str(tmp_path / "p")]) == 2
    assert "view_sise" in capsys.readouterr().err


def test_loading_options_come_from_the_config_then_the_flags_and_load_the_model(tmp_path: Path, tiny_sd15, capsys):
    from texgen.cli import main
    from texgen.diffusion import release
    from texgen.settings import LoadOptions

    config = tmp_path / "studio.toml"  # texture keys at the top level, beside a [loading] table
    config.write_text(f'view_size = 64\ntexture_size = 64\nviews = 1\nsteps = 2\nmodel = "{tiny_sd15}"\n'
                      '[loading]\nscheduler = "ddim"\nvae_slicing = true\n')
    args = ["texture", str(ASSETS / "crate.obj"), "--prompt", "crate", "--config", str(config)]
    assert main([*args, "--vae-tiling", "--cpu-offload", "--out", str(tmp_path / "o")]) == 0
    report = json.loads((tmp_path / "o" / "crate_report.json").read_text())
    expected = LoadOptions(scheduler="ddim", vae_slicing=True, vae_tiling=True, cpu_offload=True)
    assert report["loading"] == dataclasses.replace(expected, cpu_offload=False).to_dict()  # as it took effect
    assert (report["device"], report["dtype"]) == ("cpu", "float32")
    assert release(str(tiny_sd15), options=expected)  # the run loaded, and cached, the model with these options
    capsys.readouterr()

    for table, named in (('dtype = "fp8"', "dtype"), ("cpu_offlaod = true", "cpu_offlaod")):
        config.write_text(f"[loading]\n{table}\n")
        assert main([*args, "--out", str(tmp_path / "p")]) == 2
        assert named in capsys.readouterr().err
    config.write_text("")
    assert main([*args, "--compile", "--server", "tcp://127.0.0.1:9", "--out", str(tmp_path / "q")]) == 2
    error = capsys.readouterr().err
    assert "--compile" in error and "texgen serve" in error
