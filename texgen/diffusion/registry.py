"""The architectures texgen runs, by name, and how a loaded model is recognised.

The architecture comes from the model's own config, never from a file name: the UNet's
input channels (4 base, 9 inpainting, 5 depth), whether a ControlNet is present, and
whether it is SDXL (a second text encoder, or a UNet with ``text_time`` embeddings).
"""

from __future__ import annotations

from typing import Any

from ..errors import ModelError
from .backend import DiffusersGenerator
from .sd2depth import SD2Depth
from .sd15 import SD15ControlNet
from .sdxl import SDXLControlNet

ARCHITECTURES: dict[str, type[DiffusersGenerator]] = {
    "sd15-controlnet": SD15ControlNet,
    "sdxl-controlnet": SDXLControlNet,
    "sd2-depth": SD2Depth,
}


def detect_architecture(components: dict[str, Any], source: str) -> str:
    """The ARCHITECTURES key that runs ``components``; ModelError says what is missing."""
    unet = components.get("unet")
    if unet is None:
        raise ModelError(f"{source}: no UNet found; is this a diffusion model?")
    channels = unet.config.in_channels
    if channels == 5:
        return "sd2-depth"
    if channels not in (4, 9):
        raise ModelError(f"{source}: unsupported UNet with {channels} input channels; texgen runs 4 (base), "
                         "9 (inpainting) or 5 (SD 2 depth)")
    if components.get("controlnet") is None:
        kind = "an inpainting" if channels == 9 else "a plain text-to-image"
        raise ModelError(
            f"{source}: {kind} model with no depth conditioning (its UNet takes {channels} input channels and "
            "no ControlNet is attached). texgen needs a ControlNet-depth (name one in a TOML model card: "
            "controlnet = \"lllyasviel/control_v11f1p_sd15_depth\") or a depth UNet with 5 input channels "
            "(for example stabilityai/stable-diffusion-2-depth)")
    sdxl = components.get("text_encoder_2") is not None or unet.config.get("addition_embed_type") == "text_time"
    return "sdxl-controlnet" if sdxl else "sd15-controlnet"
