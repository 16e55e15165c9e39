"""Loading model specs offline: folders, model cards, single files, the cache, and clear errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from texgen.cli import main  # noqa: E402
from texgen.diffusion.backend import assemble  # noqa: E402
from texgen.diffusion.base import SamplerSettings, ViewBatch  # noqa: E402
from texgen.diffusion.loading import (  # noqa: E402
    PRESETS, LoadOptions, build_generator, load_generator, read_card, release, release_all,
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


def test_loading_draws_no_progress_bars_of_its_own(tiny_model_dir: TinyDir, capfd) -> None:
    import diffusers
    import transformers

    switches = (diffusers.utils.logging, transformers.utils.logging)
    assert all(switch.is_progress_bar_enabled() for switch in switches)
    capfd.readouterr()
    build_generator(str(tiny_model_dir("sd15-controlnet", inpaint=True)), device="cpu")
    printed = capfd.readouterr()
    assert "Loading" not in printed.err + printed.out and "it/s" not in printed.err
    assert all(switch.is_progress_bar_enabled() for switch in switches)  # as they were before


def test_a_fresh_process_loads_a_model_without_advice_it_cannot_use(tiny_model_dir: TinyDir) -> None:
    script = ("from texgen.diffusion.loading import build_generator; "
              f"build_generator({str(tiny_model_dir('sd15-controlnet'))!r}, device='cpu')")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "torchvision" not in done.stderr and "Loading" not in done.stderr, done.stderr


def test_load_options_take_effect(tiny_model_dir: TinyDir) -> None:
    options = LoadOptions(scheduler="ddim", vae_slicing=True, vae_tiling=True, channels_last=True)
    generator = build_generator(str(tiny_model_dir("sd15-controlnet")), device="cpu", options=options)
    components = generator.components
    assert components["vae"].use_slicing and components["vae"].use_tiling
    assert type(components["scheduler"]).__name__ == "DDIMScheduler"
    for name in ("unet", "controlnet"):
        weight = components[name].conv_in.weight
        assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous(), name
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


def _weights(module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in module.named_parameters()}


@pytest.mark.parametrize("arch", ["sd15-controlnet", "sdxl-controlnet", "sd2-depth"])
def test_model_card_loras_are_fused_at_their_scales(tiny_model_dir: TinyDir, tmp_path: Path, arch: str) -> None:
    """A card's LoRAs change the UNet and every text encoder by scale x their delta, and leave no LoRA
    layers behind (the weights have the base model's names); the report names them."""
    from texgen.diffusion.base import generator_report
    from texgen.diffusion.tiny import make_tiny_lora

    make_tiny_lora(tmp_path / "loras" / "style.safetensors", arch, seed=1)
    make_tiny_lora(tmp_path / "loras" / "detail.safetensors", arch, seed=2)
    base = build_generator(str(tiny_model_dir(arch)), device="cpu")
    fused = {}
    for name, loras in (("style", '"loras/style.safetensors"'), ("half", '{ path = "loras/style.safetensors", '
                                                                         'scale = 0.5 }'),
                        ("both", '["loras/style.safetensors", { path = "loras", weight_name = "detail.safetensors", '
                                 'scale = -1 }]'),
                        ("detail", '{ path = "loras/detail.safetensors", scale = -1.0 }')):
        card = tmp_path / f"{name}.toml"
        card.write_text(f'[model]\nbase = "{tiny_model_dir(arch)}"\nlora = {loras}\n')
        fused[name] = build_generator(str(card), device="cpu")
    encoders = [key for key in ("text_encoder", "text_encoder_2") if key in base.components]
    assert len(encoders) == (2 if arch == "sdxl-controlnet" else 1)
    for component in ["unet", *encoders]:
        before = _weights(base.components[component])
        after = {name: _weights(generator.components[component]) for name, generator in fused.items()}
        assert all(set(weights) == set(before) for weights in after.values())  # no LoRA layers left
        delta = {name: {key: after[name][key] - before[key] for key in before} for name in after}
        assert max(value.abs().max() for value in delta["style"].values()) > 0.01, component
        for key in before:
            torch.testing.assert_close(delta["half"][key], 0.5 * delta["style"][key], atol=1e-6, rtol=0)
            torch.testing.assert_close(delta["both"][key], delta["style"][key] + delta["detail"][key], atol=1e-5,
                                       rtol=0)
    runs(fused["both"])
    assert generator_report(fused["half"])["loras"] == [
        {"path": "loras/style.safetensors", "weight_name": None, "scale": 0.5}]
    assert "loras" not in generator_report(base)


def test_model_card_lora_reaches_the_inpainting_unet(tiny_model_dir: TinyDir, tmp_path: Path) -> None:
    from texgen.diffusion.tiny import make_tiny_lora

    make_tiny_lora(tmp_path / "style.safetensors", "sd15-controlnet")
    inpaint = tiny_model_dir("sd15-controlnet", inpaint=True)
    card = tmp_path / "card.toml"
    card.write_text(f'base = "{tiny_model_dir("sd15-controlnet")}"\ninpaint_unet = "{inpaint}"\n')
    plain = build_generator(str(card), device="cpu")
    card.write_text(card.read_text() + 'lora = "style.safetensors"\n')
    styled = build_generator(str(card), device="cpu")
    before, after = _weights(plain.components["inpaint_unet"]), _weights(styled.components["inpaint_unet"])
    assert set(before) == set(after)
    changed = [key for key in before if not torch.equal(before[key], after[key])]
    assert changed and all(".attn" in key for key in changed)  # the attention projections, as in the UNet
    unet_before, unet_after = _weights(plain.components["unet"]), _weights(styled.components["unet"])
    for key in changed:  # the same change as the UNet's
        torch.testing.assert_close(after[key] - before[key], unet_after[key] - unet_before[key], atol=1e-6, rtol=0)


def test_model_card_lora_errors_name_the_lora(tiny_model_dir: TinyDir, tmp_path: Path) -> None:
    from texgen.diffusion.tiny import make_tiny_lora

    make_tiny_lora(tmp_path / "xl.safetensors", "sdxl-controlnet")
    card = tmp_path / "card.toml"
    base = f'base = "{tiny_model_dir("sd15-controlnet")}"\n'
    card.write_text(base + 'lora = "xl.safetensors"\n')
    with pytest.raises(ModelError, match=r"xl\.safetensors does not fit StableDiffusionControlNetPipeline.*"
                                         r"another architecture.*the first: size mismatch"):
        build_generator(str(card), device="cpu")
    card.write_text(base + 'lora = ["missing.safetensors"]\n')
    with pytest.raises(ModelError, match="LoRA 'missing.safetensors' not found; looked at: .*missing.safetensors"):
        build_generator(str(card), device="cpu")
    card.write_text(base + 'lora = "texgen-tests/no-lora"\n')
    with pytest.raises(ModelError, match="LoRA from texgen-tests/no-lora on the hub.*offline"):
        build_generator(str(card), device="cpu")
    for lora, message in (('{ path = "xl.safetensors", strength = 1 }', "a lora has unknown keys strength"),
                          ('{ path = "xl.safetensors", scale = "high" }', "scale of lora 'xl.safetensors' must be a "
                                                                          "number"),
                          ("3", "each lora must be a path or a table")):
        card.write_text(base + f"lora = {lora}\n")
        with pytest.raises(ModelError, match=message):
            read_card(card)


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_single_file_controlnet_with_local_config(tiny_model_dir: TinyDir, tmp_path: Path, suffix: str) -> None:
    """A single-file ControlNet (diffusers layout) goes through ``from_single_file`` with a local config."""
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


# Diffusers -> original (LDM) layout, the inverse of diffusers' single-file conversion for SD 1.x,
# with its block loops bounded by the model's own config instead of SD 1.5's four blocks.
_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
           "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _rename(state: dict, prefixes: dict[str, str], inner: Callable[[str, str], str]) -> dict:
    """Each key's prefix replaced by its LDM prefix, and its remainder by ``inner(prefix, rest)``."""
    out = {}
    for key, tensor in state.items():
        prefix = next((p for p in prefixes if key.startswith(p)), None)
        assert prefix is not None, f"no LDM name for {key}: the test's conversion needs updating"
        out[prefixes[prefix] + inner(prefix, key[len(prefix):])] = tensor.contiguous()
    return out


def _inner_rename(table: dict[str, str], when: str) -> Callable[[str, str], str]:
    def inner(prefix: str, rest: str) -> str:
        if when in prefix:
            for old, new in table.items():
                if rest.startswith(old + "."):
                    return new + rest[len(old):]
        return rest
    return inner


def unet_to_ldm(state: dict, config) -> dict:
    n, blocks = config["layers_per_block"], len(config["block_out_channels"])
    prefixes = {"time_embedding.linear_1.": "time_embed.0.", "time_embedding.linear_2.": "time_embed.2.",
                "conv_in.": "input_blocks.0.0.", "conv_norm_out.": "out.0.", "conv_out.": "out.2.",
                "mid_block.resnets.0.": "middle_block.0.", "mid_block.attentions.0.": "middle_block.1.",
                "mid_block.resnets.1.": "middle_block.2."}
    for i in range(blocks):  # down block i: input blocks of n resnets (+ attentions), then its downsampler
        for j in range(n):
            prefixes[f"down_blocks.{i}.resnets.{j}."] = f"input_blocks.{i * (n + 1) + j + 1}.0."
            prefixes[f"down_blocks.{i}.attentions.{j}."] = f"input_blocks.{i * (n + 1) + j + 1}.1."
        prefixes[f"down_blocks.{i}.downsamplers.0.conv."] = f"input_blocks.{(i + 1) * (n + 1)}.0.op."
        for j in range(n + 1):  # up block i: n + 1 output blocks, the upsampler after the last one's attention
            prefixes[f"up_blocks.{i}.resnets.{j}."] = f"output_blocks.{i * (n + 1) + j}.0."
            prefixes[f"up_blocks.{i}.attentions.{j}."] = f"output_blocks.{i * (n + 1) + j}.1."
        with_attention = config["up_block_types"][i].startswith("CrossAttn")
        prefixes[f"up_blocks.{i}.upsamplers.0."] = f"output_blocks.{i * (n + 1) + n}.{2 if with_attention else 1}."
    return _rename(state, prefixes, _inner_rename(_RESNET, "resnets"))


def vae_to_ldm(state: dict, config) -> dict:
    blocks = len(config["block_out_channels"])
    prefixes = {"quant_conv.": "quant_conv.", "post_quant_conv.": "post_quant_conv."}
    for part in ("encoder", "decoder"):
        prefixes.update({f"{part}.conv_in.": f"{part}.conv_in.", f"{part}.conv_out.": f"{part}.conv_out.",
                         f"{part}.conv_norm_out.": f"{part}.norm_out.",
                         f"{part}.mid_block.attentions.0.": f"{part}.mid.attn_1.",
                         f"{part}.mid_block.resnets.0.": f"{part}.mid.block_1.",
                         f"{part}.mid_block.resnets.1.": f"{part}.mid.block_2."})
    for i in range(blocks):  # the decoder's up blocks count down in the LDM layout
        for j in range(config["layers_per_block"] + 1):
            prefixes[f"encoder.down_blocks.{i}.resnets.{j}."] = f"encoder.down.{i}.block.{j}."
            prefixes[f"decoder.up_blocks.{i}.resnets.{j}."] = f"decoder.up.{blocks - 1 - i}.block.{j}."
        prefixes[f"encoder.down_blocks.{i}.downsamplers.0."] = f"encoder.down.{i}.downsample."
        prefixes[f"decoder.up_blocks.{i}.upsamplers.0."] = f"decoder.up.{blocks - 1 - i}.upsample."
    inner_attention = _inner_rename(_VAE_ATTENTION, "attentions")
    out = _rename(state, prefixes, lambda p, rest: inner_attention(p, rest.replace("conv_shortcut", "nin_shortcut")))
    # the mid-block attention projections are 1x1 convolutions in the LDM layout
    return {k: v[:, :, None, None] if ".attn_1." in k and k.endswith("weight") and v.ndim == 2 else v
            for k, v in out.items()}


def clip_to_ldm(state: dict) -> dict:
    """CLIPTextModel keys under ``cond_stage_model.transformer.text_model.`` (transformers >= 5.6 drops that level)."""
    return {"cond_stage_model.transformer." + (k if k.startswith("text_model.") else "text_model." + k): v.contiguous()
            for k, v in state.items()}


def save_ldm_checkpoint(components: dict, path: Path) -> None:
    """The UNet, VAE and text encoder of a diffusers SD 1.x pipeline as one original-layout file."""
    from safetensors.torch import save_file

    state = {"model.diffusion_model." + k: v for k, v in
             unet_to_ldm(components["unet"].state_dict(), components["unet"].config).items()}
    state.update({"first_stage_model." + k: v for k, v in
                  vae_to_ldm(components["vae"].state_dict(), components["vae"].config).items()})
    state.update(clip_to_ldm(components["text_encoder"].state_dict()))
    save_file(state, path)


def configs_only(folder: Path, dest: Path) -> Path:
    """A copy of a diffusers folder without its weights, as a single file's ``config``."""
    shutil.copytree(folder, dest, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    return dest


def test_whole_pipeline_single_file_with_local_config(tiny_model_dir: TinyDir, tmp_path: Path) -> None:
    """An original-layout SD 1.5 checkpoint loads offline with its configs from a local folder.

    The card names the folder relative to itself, and the folder holds configs only, so every
    weight must come from the file; the ControlNet comes from its own folder, as the card says.
    """
    folder = tiny_model_dir("sd15-controlnet")
    reference = build_generator(str(folder), device="cpu").components
    save_ldm_checkpoint(reference, tmp_path / "model.safetensors")
    config = configs_only(folder, tmp_path / "sd15-configs")
    card = tmp_path / "card.toml"
    card.write_text(f'base = {{ path = "model.safetensors", config = "{config.name}" }}\ncontrolnet = "{folder}"\n')
    generator = build_generator(str(card), device="cpu")
    assert generator.arch == "sd15-controlnet"
    same_weights(generator, reference)
    runs(generator)


def same_weights(generator, reference: dict) -> None:
    for name in ("unet", "vae", "text_encoder"):
        loaded, expected = generator.components[name].state_dict(), reference[name].state_dict()
        assert loaded.keys() == expected.keys(), name
        assert all(torch.equal(loaded[key], expected[key]) for key in expected), name


def test_whole_pipeline_single_file_offline_with_cached_hub_configs(tiny_model_dir: TinyDir, tmp_path: Path) -> None:
    """Without a config, the configs diffusers picks for the checkpoint are read from the hub cache."""
    import huggingface_hub.constants

    folder = tiny_model_dir("sd15-controlnet")
    reference = build_generator(str(folder), device="cpu").components
    save_ldm_checkpoint(reference, tmp_path / "model.safetensors")
    repo = PRESETS["sd15-controlnet-depth"].base.location  # diffusers' default for SD 1.x checkpoints
    cached = Path(huggingface_hub.constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}"
    (cached / "refs").mkdir(parents=True)
    (cached / "refs" / "main").write_text("0" * 40)
    configs_only(folder, cached / "snapshots" / ("0" * 40))
    card = tmp_path / "card.toml"
    card.write_text(f'base = "model.safetensors"\ncontrolnet = "{folder}"\n')
    generator = build_generator(str(card), device="cpu")
    same_weights(generator, reference)
    runs(generator)


@pytest.mark.parametrize("how", ["HF_HUB_OFFLINE", "local_files_only"])
def test_whole_pipeline_single_file_offline_without_configs(tiny_model_dir: TinyDir, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """No local or cached configs: a ModelError saying how to give them, and no download attempt.

    diffusers' ``from_single_file`` retries a cache miss online even with ``local_files_only``,
    so ``local_files_only`` alone (``texgen models info --offline``) must not reach it.
    """
    import socket

    import huggingface_hub.constants

    reference = build_generator(str(tiny_model_dir("sd15-controlnet")), device="cpu").components
    path = tmp_path / "model.safetensors"
    save_ldm_checkpoint(reference, path)
    if how == "local_files_only":
        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    network: list[tuple] = []

    def no_network(*args, **kwargs):
        network.append(args)
        raise OSError("the test forbids network access")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(ModelError) as error:
        build_generator(str(path), device="cpu", options=LoadOptions(local_files_only=how == "local_files_only"))
    assert not network, "tried the network"
    message = str(error.value)
    assert "stable-diffusion-v1-5" in message and "hub cache" in message and 'config = "FOLDER"' in message


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
    assert main(["models", "make-tiny", str(tmp_path / "sd15"), "--lora", str(tmp_path / "style.safetensors")]) == 0
    (tmp_path / "card.toml").write_text('base = "sd15"\nlora = { path = "style.safetensors", scale = 0.7 }\n')
    capsys.readouterr()
    assert main(["models", "info", str(tmp_path / "card.toml"), "--device", "cpu", "--offline"]) == 0
    assert "LoRA fused:   style.safetensors, scale 0.7" in capsys.readouterr().out
