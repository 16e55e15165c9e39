"""Built-in model configs: tiny random models for tests, full-size random ones for benchmarks.

``build_components(arch, "tiny")`` makes a few-MB model set that runs a 64 x 64 view in a
fraction of a second on a CPU; ``build_components(arch, "full")`` makes the real
architecture (SD 1.5, SDXL, SD 2 depth) with random weights, which times exactly like the
real weights and needs no download. ``make_tiny`` saves a tiny set as a diffusers folder
that loads through the same code path as real weights. The CLIP tokenizer is generated
here: the 256 byte-level characters, each also with ``</w>``, plus start and end tokens.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Union

import torch

from .base import cast_dtype

ARCH_NAMES = ("sd15-controlnet", "sdxl-controlnet", "sd2-depth")
TINY_VERSION = 1  # bump when the builder changes in a way the configs do not show

_SD_SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                     beta_schedule="scaled_linear", timestep_spacing="leading", steps_offset=1,
                     clip_sample=False, set_alpha_to_one=False)
_SD_VAE = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
               down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
               sample_size=512, scaling_factor=0.18215)
_CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
               hidden_act="quick_gelu", projection_dim=768)
_SDXL_DOWN = dict(block_out_channels=(320, 640, 1280), layers_per_block=2, attention_head_dim=(5, 10, 20),
                  down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                  transformer_layers_per_block=(1, 2, 10), cross_attention_dim=2048,
                  use_linear_projection=True, addition_embed_type="text_time",
                  addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816)
_SD15_DOWN = dict(cross_attention_dim=768)  # the rest are UNet2DConditionModel / ControlNetModel defaults
_SD2_UNET = dict(in_channels=5, attention_head_dim=(5, 10, 20, 20), cross_attention_dim=1024,
                 use_linear_projection=True, sample_size=64)

_TINY_DOWN = dict(block_out_channels=(32, 64), layers_per_block=2, norm_num_groups=32, cross_attention_dim=32,
                  attention_head_dim=(2, 4), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"))
_TINY_UP = dict(up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), sample_size=8)
# Four VAE blocks keep the real 8x latent scale, so mask and depth handling run as in SD. The
# scaling factor is about 1 / std of this random encoder's latents, as 0.18215 is for SD's VAE:
# latents of unit variance make noise levels, and so refine strengths, behave as with real models.
_TINY_VAE = dict(block_out_channels=(8, 8, 16, 16), layers_per_block=1, norm_num_groups=8, latent_channels=4,
                 down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                 sample_size=64, scaling_factor=5.0, force_upcast=False)
_TINY_CLIP = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                  hidden_act="gelu", projection_dim=32)
_TINY_CONTROL = dict(conditioning_embedding_out_channels=(8, 8, 16, 16))  # 3 stride-2 convs: 8x, as the VAE
_TINY_SDXL = dict(cross_attention_dim=64, use_linear_projection=True, addition_embed_type="text_time",
                  addition_time_embed_dim=8, projection_class_embeddings_input_dim=6 * 8 + 32)

# CONFIGS[scale][arch][component] = constructor kwargs; None marks an absent component
CONFIGS: dict[str, dict[str, dict[str, Any]]] = {
    "full": {
        "sd15-controlnet": dict(unet=_SD15_DOWN, controlnet=_SD15_DOWN, vae=_SD_VAE, text_encoder=_CLIP_L,
                                text_encoder_2=None, scheduler=_SD_SCHEDULER),
        "sdxl-controlnet": dict(
            unet={**_SDXL_DOWN, "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                  "sample_size": 128},
            controlnet=_SDXL_DOWN,
            vae={**_SD_VAE, "sample_size": 1024, "scaling_factor": 0.13025, "force_upcast": True},
            text_encoder=_CLIP_L,
            text_encoder_2=dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                                num_attention_heads=20, hidden_act="gelu", projection_dim=1280),
            scheduler=_SD_SCHEDULER),
        "sd2-depth": dict(unet=_SD2_UNET, controlnet=None, vae=_SD_VAE,
                          text_encoder=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
                                            num_attention_heads=16, hidden_act="gelu", projection_dim=512),
                          text_encoder_2=None, scheduler=_SD_SCHEDULER),
    },
    "tiny": {
        "sd15-controlnet": dict(unet={**_TINY_DOWN, **_TINY_UP}, controlnet={**_TINY_DOWN, **_TINY_CONTROL},
                                vae=_TINY_VAE, text_encoder=_TINY_CLIP, text_encoder_2=None,
                                scheduler=_SD_SCHEDULER),
        "sdxl-controlnet": dict(unet={**_TINY_DOWN, **_TINY_UP, **_TINY_SDXL},
                                controlnet={**_TINY_DOWN, **_TINY_CONTROL, **_TINY_SDXL},
                                vae=_TINY_VAE, text_encoder=_TINY_CLIP,
                                text_encoder_2=_TINY_CLIP, scheduler=_SD_SCHEDULER),
        "sd2-depth": dict(unet={**_TINY_DOWN, **_TINY_UP, "in_channels": 5, "use_linear_projection": True},
                          controlnet=None, vae=_TINY_VAE, text_encoder=_TINY_CLIP, text_encoder_2=None,
                          scheduler=_SD_SCHEDULER),
    },
}


def clip_tokenizer() -> Any:
    """A CLIP tokenizer built in code: byte-level vocab (514 tokens), no merges, 77 tokens long."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[], model_max_length=77)


def arch_config(arch: str, scale: str = "tiny", *, inpaint: bool = False) -> dict[str, Any]:
    """The component configs of ``arch`` at ``scale`` ("tiny" or "full"); ``inpaint`` makes a 9-channel UNet."""
    if scale not in CONFIGS:
        raise ValueError(f"scale must be 'tiny' or 'full', got {scale!r}")
    if arch not in CONFIGS[scale]:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCH_NAMES)}")
    config = copy.deepcopy(CONFIGS[scale][arch])
    if inpaint:
        if arch == "sd2-depth":
            raise ValueError("sd2-depth has no inpainting UNet; it inpaints by latent blending")
        config["unet"]["in_channels"] = 9
    return config


def config_hash(arch: str, *, inpaint: bool = False) -> str:
    """A short hash of the tiny configs and library versions: a cache key for saved tiny models."""
    import diffusers
    import transformers

    blob = json.dumps([TINY_VERSION, diffusers.__version__, transformers.__version__,
                       arch_config(arch, "tiny", inpaint=inpaint)], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def build_components(arch: str, scale: str = "tiny", *, inpaint: bool = False,
                     device: Union[str, torch.device] = "cpu", dtype: torch.dtype = torch.float32,
                     seed: int = 0) -> dict[str, Any]:
    """Random-weight components of ``arch``, named as in a diffusers pipeline.

    Weights are created directly on ``device`` (fast on a GPU even at full size) and cast to
    ``dtype``. The same ``seed`` always gives the same weights on the same device.
    """
    from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = arch_config(arch, scale, inpaint=inpaint)
    tokenizer = clip_tokenizer()
    special = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                   pad_token_id=tokenizer.pad_token_id, max_position_embeddings=77)
    vocab_size = 49408 if scale == "full" else len(tokenizer)
    torch.manual_seed(seed)
    with torch.device(device):
        components: dict[str, Any] = {
            "unet": UNet2DConditionModel(**config["unet"]),
            "vae": AutoencoderKL(**config["vae"]),
            "text_encoder": CLIPTextModel(CLIPTextConfig(vocab_size=vocab_size, **special,
                                                         **config["text_encoder"])),
        }
        if config["controlnet"] is not None:
            components["controlnet"] = ControlNetModel(**config["controlnet"])
        if config["text_encoder_2"] is not None:
            components["text_encoder_2"] = CLIPTextModelWithProjection(
                CLIPTextConfig(vocab_size=vocab_size, **special, **config["text_encoder_2"]))
    for component in components.values():
        if dtype != torch.float32:
            cast_dtype(component, dtype)
        component.eval()
    components["tokenizer"] = tokenizer
    if "text_encoder_2" in components:
        components["tokenizer_2"] = clip_tokenizer()
    components["scheduler"] = DDIMScheduler(**config["scheduler"])
    return components


def make_tiny(directory: Union[str, Path], arch: str, *, inpaint: bool = False, seed: int = 0) -> Path:
    """Write a complete, loadable diffusers folder of a tiny random ``arch`` model (about 10 MB).

    ``inpaint`` gives the UNet 9 input channels (an inpainting model), for sd15/sdxl only.
    """
    import diffusers

    from .backend import assemble
    from .registry import ARCHITECTURES

    directory = Path(directory)
    components = build_components(arch, "tiny", inpaint=inpaint, seed=seed)
    pipeline_class = getattr(diffusers, ARCHITECTURES[arch].folder_class(inpaint))
    assemble(pipeline_class, components).save_pretrained(directory, safe_serialization=True)
    return directory


def make_tiny_lora(path: Union[str, Path], arch: str, *, rank: int = 4, seed: int = 0) -> Path:
    """Write a random LoRA for the tiny ``arch`` as one ``.safetensors`` file, as diffusers' training
    scripts save one: rank ``rank`` on the UNet's attention projections and the text encoders'.

    Its weights do not depend on the model's, so it fits any tiny model of ``arch``.
    """
    import diffusers
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict

    from .registry import ARCHITECTURES

    path = Path(path)
    components = build_components(arch, "tiny", seed=seed)
    targets = {"unet": ["to_q", "to_k", "to_v", "to_out.0"], "text_encoder": ["q_proj", "k_proj", "v_proj", "out_proj"],
               "text_encoder_2": ["q_proj", "k_proj", "v_proj", "out_proj"]}
    torch.manual_seed(seed)
    layers = {}
    for key, modules in targets.items():
        if key in components:  # init_lora_weights=False: both factors random, so the LoRA changes the model
            config = LoraConfig(r=rank, lora_alpha=rank, target_modules=modules, init_lora_weights=False)
            inject_adapter_in_model(config, components[key])
            layers[f"{key}_lora_layers"] = convert_state_dict_to_diffusers(get_peft_model_state_dict(components[key]))
    pipeline_class = getattr(diffusers, ARCHITECTURES[arch].folder_class(False))
    pipeline_class.save_lora_weights(path.parent, weight_name=path.name, **layers)
    return path
