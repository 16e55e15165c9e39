"""Loading model specs offline: folders, model cards, single files, the cache, and clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Iterator

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from texgen.cli import main  # noqa: E402
from texgen.diffusion.backend import assemble  # noqa: E402
from texgen.diffusion.base import SamplerSettings, ViewBatch  # noqa: E402
from texgen.diffusion.loading import (  # noqa: E402
    LoadOptions, build_generator, load_generator, read_card, release, release_all,
)
from texgen.diffusion.tiny import build_components  # noqa: E402
from texgen.errors import ModelError  # noqa: E402

TinyDir = Callable[..., Path]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No network, and an empty hub cache, for every test here."""
    import huggingface_hub.constants

    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    yield
    torch.set_num_threads(torch_threads)


def runs(generator) -> None:
    """One small generate call works."""
    views = ViewBatch(["a red box"], torch.rand(1, 64, 64))
    out = generator.generate(views, SamplerSettings(steps=2, guidance=3.0))
    assert out.shape == (1, 3, 64, 64)


@pytest.mark.parametrize("arch", ["sd15-controlnet", "sdxl-controlnet", "sd2-depth"])
def test_local_folder_offline_detects_architecture(tiny_model_dir: TinyDir, arch: str) -> None:
    generator = build_generator(str(tiny_model_dir(arch)), device="cpu")
    assert generator.arch == arch and generator.device.type == "cpu" and generator.dtype == torch.float32
    runs(generator)


def test_cache_returns_the_same_generator_until_released(tiny_model_dir: TinyDir) -> None:
    spec = str(tiny_model_dir("sd2-depth"))
    release_all()  # other tests' generators (the paint loop's, the CLI's) share the process-wide cache
    first = load_generator(spec, device="cpu")
    assert load_generator(spec, device="cpu") is first
    assert load_generator(spec, device="cpu", options=LoadOptions(scheduler="ddim")) is not first
    assert release(spec, device="cpu")
    assert not release(spec, device="cpu")
    assert load_generator(spec, device="cpu") is not first
    assert release_all() == 2


def test_model_card_with_inpainting_unet(tiny_model_dir: TinyDir, tmp_path: Path) -> None:
    shutil.copytree(tiny_model_dir("sd15-controlnet"), tmp_path / "base")
    card = tmp_path / "card.toml"
    card.write_text(f'[model]\nbase = "base"\ninpaint_unet = "{tiny_model_dir("sd15-controlnet", inpaint=True)}"\n')
    generator = build_generator(str(card), device="cpu")
    assert generator.pipelines["generate"].unet.config.in_channels == 4
    assert generator.pipelines["inpaint"].unet.config.in_channels == 9
    runs(generator)


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_single_file_controlnet_with_local_config(tiny_model_dir: TinyDir, tmp_path: Path, suffix: str) -> None:
    """A single-file model goes through ``from_single_file`` with its config from a local folder.

    Whole-pipeline checkpoints must be in the original (LDM) layout, which diffusers can
    read but not write, so no tiny one can be made here; a diffusers-layout ControlNet
    file exercises the same loader with ``config`` and ``local_files_only``.
    """
    from safetensors.torch import save_file

    folder = tiny_model_dir("sd15-controlnet")
    reference = build_generator(str(folder), device="cpu").components["controlnet"].state_dict()
    state = {name: tensor.clone() + 1.0 for name, tensor in reference.items()}  # distinct from the folder's
    path = tmp_path / f"depth-controlnet{suffix}"
    if suffix == ".safetensors":
        save_file(state, path)
    else:
        torch.save(state, path)
    card = tmp_path / "card.toml"
    card.write_text(f'base = "{folder}"\ncontrolnet = {{ path = "{path.name}", config = "{folder / "controlnet"}" }}\n')
    generator = build_generator(str(card), device="cpu")
    loaded = generator.components["controlnet"].state_dict()
    assert all(torch.equal(loaded[name], state[name]) for name in state)
    runs(generator)


def test_whole_file_in_diffusers_layout_is_refused_clearly(tiny_model_dir: TinyDir, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    unet = build_generator(str(tiny_model_dir("sd15-controlnet")), device="cpu").components["unet"]
    path = tmp_path / "model.safetensors"
    save_file({name: t.contiguous() for name, t in unet.state_dict().items()}, path)
    with pytest.raises(ModelError, match="original layout"):
        build_generator(str(path), device="cpu")


def test_missing_folder_names_the_paths(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "model"
    with pytest.raises(ModelError, match=str(missing)):
        build_generator(str(missing), device="cpu")


def test_missing_weights_list_what_was_found(tiny_model_dir: TinyDir, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir("sd15-controlnet"), broken)
    for weights in (broken / "unet").glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(ModelError) as error:
        build_generator(str(broken), device="cpu")
    message = str(error.value)
    assert str(broken / "unet") in message and "config.json" in message and "files in each component folder" in message


def test_plain_model_without_depth_is_the_wrong_type(tmp_path: Path) -> None:
    from diffusers import StableDiffusionPipeline

    components = build_components("sd15-controlnet", "tiny")
    assemble(StableDiffusionPipeline, components).save_pretrained(tmp_path / "plain")
    with pytest.raises(ModelError, match="no depth conditioning.*ControlNet-depth"):
        build_generator(str(tmp_path / "plain"), device="cpu")


def test_hub_id_offline_not_cached_names_the_cache(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as error:
        build_generator("texgen-tests/not-downloaded", device="cpu")
    message = str(error.value)
    assert "models--texgen-tests--not-downloaded" in message and "offline" in message


def test_model_card_hub_controlnet_offline(tiny_model_dir: TinyDir, tmp_path: Path) -> None:
    card = tmp_path / "card.toml"
    card.write_text(f'base = "{tiny_model_dir("sd15-controlnet")}"\ncontrolnet = "texgen-tests/no-controlnet"\n')
    with pytest.raises(ModelError, match="controlnet.*texgen-tests/no-controlnet"):
        build_generator(str(card), device="cpu")


def test_bad_model_cards(tmp_path: Path) -> None:
    card = tmp_path / "card.toml"
    card.write_text('base = "x"\nunet = "y"\n')
    with pytest.raises(ModelError, match="unknown keys unet"):
        read_card(card)
    card.write_text('controlnet = "y"\n')
    with pytest.raises(ModelError, match="needs 'base'"):
        read_card(card)
    with pytest.raises(ModelError, match="not found"):
        read_card(tmp_path / "missing.toml")


def test_unknown_random_architecture() -> None:
    with pytest.raises(ModelError, match="unknown architecture"):
        build_generator("random:sd3", device="cpu")


def test_cli_make_tiny_and_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "make-tiny", str(tmp_path / "tiny"), "--arch", "sd2-depth"]) == 0
    assert (tmp_path / "tiny" / "model_index.json").is_file()
    assert main(["models", "info", str(tmp_path / "tiny"), "--device", "cpu", "--offline"]) == 0
    out = capsys.readouterr().out
    assert "architecture: sd2-depth" in out and "5 input channels" in out and "cpu" in out
    assert main(["models", "make-tiny", str(tmp_path / "x"), "--arch", "sd9"]) == 2
