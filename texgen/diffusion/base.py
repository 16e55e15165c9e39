"""The generator protocol the paint loop calls, independent of any model library.

A generator turns a batch of views into images. Every tensor is on the CPU or the
generator's device; images are float in [0, 1], channels first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol, runtime_checkable

import torch

from ..progress import CancelToken, ProgressCallback


def cast_dtype(module: torch.nn.Module, dtype: torch.dtype) -> None:
    """Cast ``module``'s weights to ``dtype`` in place.

    diffusers' ``ModelMixin.to`` warns about modules to keep in float32 on every dtype cast, even
    when the model keeps none: the paint loop's VAE upcasts printed two warnings per view on a GPU.
    A model that does keep some still goes through diffusers' own ``to``.
    """
    if getattr(module, "_keep_in_fp32_modules", None):
        module.to(dtype)
    else:
        torch.nn.Module.to(module, dtype)


def generator_report(generator: object) -> dict:
    """A report's fields for ``generator``: its name, the options it was loaded with as they took
    effect (a generator that has none, such as the oracle, records none), its device and dtype
    (when it has them), and the LoRAs fused into it (when there are any)."""
    fields: dict = {"generator": getattr(generator, "name", type(generator).__name__)}
    if (load_options := getattr(generator, "load_options", None)) is not None:
        fields["loading"] = load_options.to_dict()
    for key in ("device", "dtype"):
        if hasattr(generator, key):
            fields[key] = str(getattr(generator, key)).removeprefix("torch.")
    if loras := getattr(generator, "loras", None):
        fields["loras"] = list(loras)
    return fields


@dataclass
class ViewBatch:
    """What one diffusion call needs for B views of H x W pixels.

    prompts : B prompts (direction words already added by the caller)
    depth : (B, H, W) float, normalised per view, near = 1, far = small, background = 0;
        always at full view resolution, never downscaled to latent size by the caller
    cameras : optional list of B texgen Camera objects (the oracle generator renders them)
    image : (B, 3, H, W) float in [0, 1], the current paint seen from each view (inpaint / refine)
    mask : (B, H, W) float in [0, 1], how much each pixel may change: 0 keep, 1 generate from
        scratch, values in between refine with that denoising strength
    view_indices : optional B global view indices; each view's noise is seeded from
        (seed, index), so splitting views into batches does not change them (default 0..B-1)
    """

    prompts: list[str]
    depth: torch.Tensor
    negative_prompt: str = ""
    cameras: Optional[list] = None
    image: Optional[torch.Tensor] = None
    mask: Optional[torch.Tensor] = None
    view_indices: Optional[list[int]] = None

    def __post_init__(self) -> None:
        batch = len(self.prompts)
        if self.depth.ndim != 3 or self.depth.shape[0] != batch:
            raise ValueError(f"depth must be (B, H, W) with B={batch}, got {tuple(self.depth.shape)}")
        height, width = self.depth.shape[1:]
        if self.image is not None and tuple(self.image.shape) != (batch, 3, height, width):
            raise ValueError(f"image must be ({batch}, 3, {height}, {width}), got {tuple(self.image.shape)}")
        if self.mask is not None and tuple(self.mask.shape) != (batch, height, width):
            raise ValueError(f"mask must be ({batch}, {height}, {width}), got {tuple(self.mask.shape)}")
        if (self.mask is None) != (self.image is None):
            raise ValueError("image and mask go together: give both for inpainting, neither for generation")
        if self.view_indices is not None and len(self.view_indices) != batch:
            raise ValueError(f"view_indices must have {batch} entries, got {len(self.view_indices)}")

    @property
    def size(self) -> tuple[int, int]:
        return int(self.depth.shape[1]), int(self.depth.shape[2])


@dataclass
class SamplerSettings:
    """Sampling parameters shared by every call of one job."""

    steps: int = 25
    guidance: float = 7.5
    controlnet_scale: float = 1.0
    seed: int = 0
    preview_every: int = 5


@runtime_checkable
class Generator(Protocol):
    """Turns views into images.

    ``generate`` paints from depth alone (``batch.image``/``batch.mask`` are None);
    ``inpaint`` repaints ``batch.mask`` > 0 and leaves mask == 0 as it is. Both return
    (B, 3, H, W) float images in [0, 1] at the view resolution, on the CPU. ``progress``
    receives one event per denoising step; ``cancel`` is checked at every step and a
    cancelled call raises :class:`texgen.errors.Cancelled`, leaving the generator usable.
    """

    name: str

    def generate(self, batch: ViewBatch, sampler: SamplerSettings,
                 progress: Optional[ProgressCallback] = None,
                 cancel: Optional[CancelToken] = None) -> torch.Tensor: ...

    def inpaint(self, batch: ViewBatch, sampler: SamplerSettings,
                progress: Optional[ProgressCallback] = None,
                cancel: Optional[CancelToken] = None) -> torch.Tensor: ...
