"""SDXL + ControlNet-depth."""

from __future__ import annotations

from .backend import SDXL_LATENT_RGB, SDXL_LATENT_RGB_BIAS
from .controlnet import ControlNetGenerator


class SDXLControlNet(ControlNetGenerator):
    """StableDiffusionXLControlNetPipeline, and StableDiffusionXLControlNetInpaintPipeline to inpaint.

    For fp16, prefer a VAE that does not need upcasting (madebyollin/sdxl-vae-fp16-fix);
    the stock SDXL VAE is run in fp32 when encoding and decoding.
    """

    arch = "sdxl-controlnet"
    generate_class = "StableDiffusionXLControlNetPipeline"
    inpaint_class = "StableDiffusionXLControlNetInpaintPipeline"
    required = ControlNetGenerator.required + ("text_encoder_2", "tokenizer_2")
    latent_rgb = SDXL_LATENT_RGB
    latent_rgb_bias = SDXL_LATENT_RGB_BIAS
