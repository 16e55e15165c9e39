"""ControlNet-depth backends (SD 1.5 and SDXL share everything but the pipeline classes).

Generation runs the ControlNet text-to-image pipeline on the full-resolution depth;
inpainting runs the ControlNet inpaint pipeline built from the same components, with the
base UNet (4 input channels) or an inpainting UNet (9: latents, mask, masked image).
A model whose only UNet is an inpainting one generates through the inpaint pipeline
with everything masked.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from ..errors import ModelError
from .backend import DiffusersGenerator, LatentBlend, assemble, require
from .base import SamplerSettings, ViewBatch


class ControlNetGenerator(DiffusersGenerator):
    """Depth through a ControlNet; subclasses name the two diffusers pipeline classes."""

    generate_class: str
    inpaint_class: str
    required: tuple[str, ...] = ("unet", "vae", "text_encoder", "tokenizer", "scheduler", "controlnet")

    @classmethod
    def check_components(cls, components: dict[str, Any], name: str) -> None:
        require(components, cls.required, cls.arch, name)
        for key in ("unet", "inpaint_unet"):
            unet = components.get(key)
            if unet is not None and unet.config.in_channels not in (4, 9):
                raise ModelError(f"{name}: {key} takes {unet.config.in_channels} input channels; "
                                 f"{cls.arch} needs 4 (base) or 9 (inpainting)")
        inpaint_unet = components.get("inpaint_unet")
        if inpaint_unet is not None and (inpaint_unet.config.cross_attention_dim
                                         != components["unet"].config.cross_attention_dim):
            raise ModelError(f"{name}: inpaint_unet does not fit the base model (cross-attention width "
                             f"{inpaint_unet.config.cross_attention_dim}, base "
                             f"{components['unet'].config.cross_attention_dim})")

    @classmethod
    def folder_class(cls, inpaint: bool) -> str:
        return cls.inpaint_class if inpaint else cls.generate_class

    def build_pipelines(self, components: dict[str, Any]) -> dict[str, Any]:
        import diffusers

        unet = components["unet"]
        inpaint = assemble(getattr(diffusers, self.inpaint_class), components,
                           unet=components.get("inpaint_unet") or unet)
        if unet.config.in_channels == 9:
            return {"generate": inpaint, "inpaint": inpaint}
        return {"generate": assemble(getattr(diffusers, self.generate_class), components), "inpaint": inpaint}

    def call_kwargs(self, task: str, batch: ViewBatch, sampler: SamplerSettings, noise: torch.Tensor,
                    blend: Optional[LatentBlend]) -> dict[str, Any]:
        height, width = batch.size
        depth = batch.depth.to(noise.device, torch.float32)[:, None].expand(-1, 3, -1, -1)
        kwargs = dict(height=height, width=width, latents=noise,
                      controlnet_conditioning_scale=sampler.controlnet_scale)
        if self.pipelines[task] is not self.pipelines["inpaint"]:
            return {**kwargs, "image": depth}
        if blend is None:  # generating with an inpainting UNet: nothing is known yet
            image = torch.full_like(depth, 0.5)
            mask = torch.ones_like(depth[:, :1])
        else:
            assert batch.image is not None
            image = batch.image.to(noise.device, torch.float32)
            mask = blend.pixel_mask((height, width))
        return {**kwargs, "image": image, "mask_image": mask, "control_image": depth, "strength": 1.0}
