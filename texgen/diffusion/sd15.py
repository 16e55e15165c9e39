"""SD 1.5 + ControlNet-depth v1.1: the default backend, which runs on 6-8 GB of VRAM."""

from __future__ import annotations

from .controlnet import ControlNetGenerator


class SD15ControlNet(ControlNetGenerator):
    """StableDiffusionControlNetPipeline, and StableDiffusionControlNetInpaintPipeline to inpaint."""

    arch = "sd15-controlnet"
    generate_class = "StableDiffusionControlNetPipeline"
    inpaint_class = "StableDiffusionControlNetInpaintPipeline"
