"""SD 2 depth: a UNet with a fifth input channel for depth, as Dream Textures and TEXTure use.

Both generation and inpainting run StableDiffusionDepth2ImgPipeline at strength 1 from
latents (no VAE encode of a dummy image); inpainting is the shared latent blending.
The depth UNet takes depth at latent size by design: the pipeline resizes the
full-resolution depth bicubically, exactly as in training.
"""

from __future__ import annotations

import functools
from typing import Any, Optional

import torch

from ..errors import ModelError
from .backend import DiffusersGenerator, LatentBlend, assemble, require
from .base import SamplerSettings, ViewBatch


@functools.cache
def _depth2img_class() -> type:
    from diffusers import StableDiffusionDepth2ImgPipeline

    class Depth2ImgFromLatents(StableDiffusionDepth2ImgPipeline):
        """Depth2Img whose ``image`` may be latents: the view size comes from the depth map."""

        def prepare_depth_map(self, image: Any, depth_map: torch.Tensor, *args: Any) -> torch.Tensor:
            return super().prepare_depth_map(depth_map[:, None], depth_map, *args)

    return Depth2ImgFromLatents


class SD2Depth(DiffusersGenerator):
    """StableDiffusionDepth2ImgPipeline with the view depth passed as ``depth_map``."""

    arch = "sd2-depth"

    @classmethod
    def check_components(cls, components: dict[str, Any], name: str) -> None:
        require(components, ("unet", "vae", "text_encoder", "tokenizer", "scheduler"), cls.arch, name)
        if components["unet"].config.in_channels != 5:
            raise ModelError(f"{name}: sd2-depth needs a depth UNet with 5 input channels, "
                             f"got {components['unet'].config.in_channels}")
        if components.get("inpaint_unet") is not None:
            raise ModelError(f"{name}: sd2-depth inpaints by latent blending; remove inpaint_unet from the card")

    @classmethod
    def folder_class(cls, inpaint: bool) -> str:
        return "StableDiffusionDepth2ImgPipeline"

    def build_pipelines(self, components: dict[str, Any]) -> dict[str, Any]:
        pipe = assemble(_depth2img_class(), components)
        return {"generate": pipe, "inpaint": pipe}

    def call_kwargs(self, task: str, batch: ViewBatch, sampler: SamplerSettings, noise: torch.Tensor,
                    blend: Optional[LatentBlend]) -> dict[str, Any]:
        # Zero latents at strength 1: the pipeline starts from its own noise, drawn from the same
        # per-view generators as ``noise``; the blend then holds the kept latents
        return dict(image=torch.zeros_like(noise), depth_map=batch.depth.to(noise.device, noise.dtype),
                    strength=1.0)
