"""What every diffusers backend shares: one denoising call, driven by one step hook.

An architecture (sd15.py, sdxl.py, sd2depth.py) subclasses :class:`DiffusersGenerator` and
only says how to build its pipelines and which arguments they take. Noise, the
time-varying inpaint mask, progress, previews, cancellation, decoding and out-of-memory
errors live here.

The time-varying mask (Differential Diffusion, TEXTure's refine): a latent pixel with
strength m may change only during the last round(m * n) of the n denoising steps. Before
that, the step hook (``callback_on_step_end``) resets it to the current paint's latents
noised to the next timestep; after the last step, kept pixels are the clean latents.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import threading
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import Cancelled, ModelError, OutOfMemoryError
from ..progress import CancelToken, ProgressCallback, ProgressEvent
from ..settings import LoadOptions
from .base import SamplerSettings, ViewBatch, cast_dtype

log = logging.getLogger(__name__)

# Linear latent -> RGB approximations for previews (the factors ComfyUI uses), output about [-1, 1]
SD_LATENT_RGB = ((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350),
                 (-0.2829, 0.1762, 0.2721), (-0.2120, -0.2616, -0.7177))
SDXL_LATENT_RGB = ((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068),
                   (0.1076, 0.1111, -0.0362), (-0.3165, -0.2492, -0.2188))
SDXL_LATENT_RGB_BIAS = (0.1084, -0.0175, -0.0011)


def assemble(pipeline_class: type, components: dict[str, Any], **overrides: Any) -> Any:
    """Build ``pipeline_class`` from shared components, passing None for the optional ones it lacks."""
    kwargs: dict[str, Any] = {}
    for name, param in inspect.signature(pipeline_class.__init__).parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if name in overrides:
            kwargs[name] = overrides[name]
        elif name in components:
            kwargs[name] = components[name]
        elif name == "requires_safety_checker":
            kwargs[name] = False
        elif param.default is param.empty:
            kwargs[name] = None  # safety_checker, feature_extractor, depth_estimator: unused here
    pipe = pipeline_class(**kwargs)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def view_seed(seed: int, index: int) -> int:
    """A well-mixed 63-bit seed for view ``index`` of a job seeded with ``seed``."""
    state = np.random.SeedSequence([seed % 2**64, index]).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


def latent_strength(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, H, W) pixel mask -> (B, 1, h, w) latent strengths, the max over each latent's pixels.

    Taking the max means every pixel that must change lies in a latent that may change.
    """
    return F.adaptive_max_pool2d(mask[:, None].float(), size)


def latent_preview(latents: torch.Tensor, factors: torch.Tensor, bias: torch.Tensor) -> np.ndarray:
    """(B, C, h, w) latents -> (h, B * w, 3) uint8, the views side by side, without the VAE."""
    rgb = torch.einsum("bchw,cr->bhwr", latents.float(), factors.to(latents.device)) + bias.to(latents.device)
    rgb = ((rgb + 1) / 2).clamp(0, 1).mul(255).round().to(torch.uint8)
    batch, height, width, _ = rgb.shape
    return rgb.permute(1, 0, 2, 3).reshape(height, batch * width, 3).cpu().numpy()


@dataclass
class LatentBlend:
    """The time-varying mask of one inpaint call.

    init : (B, C, h, w) clean latents of the current paint
    noise : (B, C, h, w) the call's noise
    strength : (B, 1, h, w) in [0, 1], from :func:`latent_strength`
    """

    init: torch.Tensor
    noise: torch.Tensor
    strength: torch.Tensor

    def held(self, step: int, steps: int) -> torch.Tensor:
        """(B, 1, h, w) bool: the latents that may not change during ``step`` (0-based) of ``steps``."""
        return steps - torch.round(self.strength * steps) > step

    def apply(self, scheduler: Any, latents: torch.Tensor, step: int) -> torch.Tensor:
        """Reset the latents held during ``step`` to the paint noised to the next timestep."""
        timesteps = scheduler.timesteps
        if step + 1 < len(timesteps):
            target = scheduler.add_noise(self.init, self.noise, timesteps[step + 1:step + 2])
        else:
            target = self.init
        return torch.where(self.held(step, len(timesteps)), target.to(latents.dtype), latents)

    def pixel_mask(self, size: tuple[int, int]) -> torch.Tensor:
        """(B, 1, H, W) binary mask of the latents that change at some step, at pixel size.

        Constant over each latent's pixels, so a pipeline's own nearest-neighbour downscale
        of it gives exactly the latents this blend lets change.
        """
        return F.interpolate((self.strength > 0).float(), size=size, mode="nearest")


@dataclass
class StepHook:
    """The ``callback_on_step_end`` of one call: blend, report progress, preview, cancel.

    Cancelling raises :class:`Cancelled` from the hook, which stops every pipeline at once
    (Depth2Img ignores diffusers' ``_interrupt`` flag); the scheduler state is reset by
    ``set_timesteps`` at the start of the next call, so the pipeline stays usable.
    """

    blend: Optional[LatentBlend]
    progress: Optional[ProgressCallback]
    cancel: Optional[CancelToken]
    preview_every: int
    rgb_factors: torch.Tensor
    rgb_bias: torch.Tensor

    def __call__(self, pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        latents = kwargs["latents"]
        if self.blend is not None:
            latents = self.blend.apply(pipe.scheduler, latents, step)
        steps = len(pipe.scheduler.timesteps)
        if self.progress is not None:
            preview = None
            if self.preview_every > 0 and ((step + 1) % self.preview_every == 0 or step + 1 == steps):
                preview = latent_preview(latents, self.rgb_factors, self.rgb_bias)
            self.progress(ProgressEvent(stage="generate", step=step + 1, steps=steps, preview=preview,
                                        message=f"denoising step {step + 1}/{steps}"))
        if self.cancel is not None and self.cancel.cancelled:
            raise Cancelled(f"cancelled at denoising step {step + 1}/{steps}")
        return {"latents": latents}


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA's OutOfMemoryError and the plain RuntimeErrors of MPS and CPU allocators."""
    text = str(exc)
    return (isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in text
            or "can't allocate memory" in text)


def oom_message(name: str, batch: ViewBatch, offloaded: bool) -> str:
    """What to say when painting ``batch`` with model ``name`` ran out of device memory."""
    height, width = batch.size
    tips = [] if offloaded else ["cpu_offload (--cpu-offload)"]
    tips += ["vae_tiling and vae_slicing (--vae-tiling --vae-slicing)", f"a smaller view_size (now {height}x{width})",
             f"fewer views per batch (now {len(batch.prompts)})"]
    return (f"out of device memory running {name}; to use less, try " + ", ".join(tips)
            + " (loading options are set in [loading] of --config, or on `texgen serve` for a server)")


class DiffusersGenerator:
    """A :class:`texgen.diffusion.base.Generator` over diffusers pipelines.

    components : the pipeline components by diffusers name (unet, vae, text_encoder,
        tokenizer, scheduler, and controlnet, text_encoder_2, ... as the architecture needs),
        plus an optional ``inpaint_unet``; already on ``device`` unless ``load_options.cpu_offload``.
    load_options : the options the components were loaded with, as they took effect (reports record them)
    loras : the LoRAs fused into the components, as reports name them ({"path", "weight_name", "scale"} each)
    Calls are serialised by a lock: one pipeline runs one call at a time.
    """

    arch: ClassVar[str]
    latent_rgb: ClassVar[tuple[tuple[float, float, float], ...]] = SD_LATENT_RGB
    latent_rgb_bias: ClassVar[tuple[float, float, float]] = (0.0, 0.0, 0.0)

    def __init__(self, components: dict[str, Any], *, name: str, device: torch.device,
                 dtype: torch.dtype, load_options: LoadOptions = LoadOptions(), loras: Sequence[dict] = ()) -> None:
        self.check_components(components, name)
        self.name = name
        self.loras = list(loras)
        self.components = components
        self.device = device
        self.dtype = dtype
        self.load_options = load_options
        self.cpu_offload = load_options.cpu_offload
        self.pipelines = self.build_pipelines(components)
        self._lock = threading.Lock()
        self._hooked: Any = None  # the pipeline whose offload hooks are installed
        self._rgb = torch.tensor(self.latent_rgb), torch.tensor(self.latent_rgb_bias)

    # What an architecture provides -------------------------------------------------------------

    @classmethod
    def check_components(cls, components: dict[str, Any], name: str) -> None:
        """Raise ModelError when ``components`` cannot run this architecture."""

    @classmethod
    def folder_class(cls, inpaint: bool) -> str:
        """The diffusers pipeline class a model folder of this architecture is saved as."""
        raise NotImplementedError

    def build_pipelines(self, components: dict[str, Any]) -> dict[str, Any]:
        """{"generate": pipeline, "inpaint": pipeline}, sharing ``components``."""
        raise NotImplementedError

    def call_kwargs(self, task: str, batch: ViewBatch, sampler: SamplerSettings, noise: torch.Tensor,
                    blend: Optional[LatentBlend]) -> dict[str, Any]:
        """The architecture's own arguments of one pipeline call (conditioning, images, latents)."""
        raise NotImplementedError

    # The Generator protocol --------------------------------------------------------------------

    def generate(self, batch: ViewBatch, sampler: SamplerSettings,
                 progress: Optional[ProgressCallback] = None,
                 cancel: Optional[CancelToken] = None) -> torch.Tensor:
        """Paint B views from depth alone -> (B, 3, H, W) float32 CPU images in [0, 1]."""
        return self._run("generate", batch, sampler, progress, cancel)

    def inpaint(self, batch: ViewBatch, sampler: SamplerSettings,
                progress: Optional[ProgressCallback] = None,
                cancel: Optional[CancelToken] = None) -> torch.Tensor:
        """Repaint ``batch.mask`` > 0 of ``batch.image`` -> (B, 3, H, W) float32 CPU images in [0, 1].

        A pixel of mask m changes only during the last m-fraction of the steps; mask == 0
        pixels are returned exactly as given (the VAE round trip alone would blur them).
        """
        if batch.image is None or batch.mask is None:
            raise ValueError("inpaint needs batch.image and batch.mask")
        return self._run("inpaint", batch, sampler, progress, cancel)

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.components["vae"].config.block_out_channels) - 1)

    # One call, in numbered steps ---------------------------------------------------------------

    def _run(self, task: str, batch: ViewBatch, sampler: SamplerSettings,
             progress: Optional[ProgressCallback], cancel: Optional[CancelToken]) -> torch.Tensor:
        # 1. Check inputs before touching the device
        height, width = batch.size
        factor = self.vae_scale_factor
        if height % factor or width % factor:
            raise ValueError(f"view size must be a multiple of {factor} for {self.name}, got {height}x{width}")
        if sampler.steps < 1:
            raise ValueError(f"steps must be at least 1, got {sampler.steps}")
        if cancel is not None:
            cancel.raise_if_cancelled()
        with self._lock:
            try:
                return self._denoise(task, batch, sampler, progress, cancel)
            except RuntimeError as exc:  # torch.cuda.OutOfMemoryError is one
                if not is_out_of_memory(exc):
                    raise
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                raise OutOfMemoryError(oom_message(self.name, batch, self.cpu_offload)) from exc

    def _denoise(self, task: str, batch: ViewBatch, sampler: SamplerSettings,
                 progress: Optional[ProgressCallback], cancel: Optional[CancelToken]) -> torch.Tensor:
        pipe = self.pipelines[task]
        if self.cpu_offload and self._hooked is not pipe:
            pipe.enable_model_cpu_offload(device=self.device)
            self._hooked = pipe
        device = pipe._execution_device
        height, width = batch.size
        factor = self.vae_scale_factor
        indices = batch.view_indices if batch.view_indices is not None else range(len(batch.prompts))

        # 2. Per-view noise, seeded from (seed, view index) so batching does not change it
        from diffusers.utils.torch_utils import randn_tensor

        def generators() -> list[torch.Generator]:
            return [torch.Generator().manual_seed(view_seed(sampler.seed, i)) for i in indices]

        channels = self.components["vae"].config.latent_channels
        noise = randn_tensor((len(batch.prompts), channels, height // factor, width // factor),
                             generator=generators(), device=device, dtype=self.dtype)

        # 3. Encode the current paint and plan the time-varying mask
        blend = None
        if task == "inpaint":
            assert batch.image is not None and batch.mask is not None
            strength = latent_strength(batch.mask.to(device), noise.shape[-2:])
            blend = LatentBlend(self.encode(batch.image.to(device)).to(self.dtype), noise, strength)

        # 4. Denoise; the step hook blends, reports and cancels
        try:
            latents = pipe(
                prompt=list(batch.prompts),
                negative_prompt=[batch.negative_prompt] * len(batch.prompts),
                num_inference_steps=sampler.steps,
                guidance_scale=sampler.guidance,
                generator=generators(),
                output_type="latent",
                callback_on_step_end=StepHook(blend, progress, cancel, sampler.preview_every, *self._rgb),
                callback_on_step_end_tensor_inputs=["latents"],
                **self.call_kwargs(task, batch, sampler, noise, blend),
            ).images
        except Cancelled:
            if self.cpu_offload:
                pipe.maybe_free_model_hooks()  # offload what the interrupted call left on the GPU
            raise

        # 5. Decode, and paste back the kept pixels
        images = self.decode(latents)
        if task == "inpaint":
            keep = (batch.mask == 0)[:, None].cpu()
            images = torch.where(keep, batch.image.float().cpu(), images)
        return images

    # The VAE ------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _vae_dtype(self) -> Iterator[torch.dtype]:
        """The VAE's working dtype; an fp16 VAE that asks for it (SDXL) runs in fp32 meanwhile."""
        vae = self.components["vae"]
        if vae.dtype == torch.float16 and vae.config.get("force_upcast", False):
            cast_dtype(vae, torch.float32)
            try:
                yield torch.float32
            finally:
                cast_dtype(vae, torch.float16)
        else:
            yield vae.dtype

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images in [0, 1] -> (B, C, H/f, W/f) scaled latents (the distribution's mode)."""
        vae = self.components["vae"]
        with self._vae_dtype() as dtype:
            latents = vae.encode(images.to(dtype) * 2 - 1).latent_dist.mode()
        return latents * vae.config.scaling_factor

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) scaled latents -> (B, 3, h*f, w*f) float32 CPU images in [0, 1]."""
        vae = self.components["vae"]
        with self._vae_dtype() as dtype:
            images = vae.decode(latents.to(dtype) / vae.config.scaling_factor).sample
        return (images.float() / 2 + 0.5).clamp(0, 1).cpu()


def require(components: dict[str, Any], names: tuple[str, ...], arch: str, source: str) -> None:
    """Raise ModelError naming the components of ``names`` that ``components`` lacks."""
    missing = [n for n in names if components.get(n) is None]
    if missing:
        present = ", ".join(sorted(k for k, v in components.items() if v is not None))
        raise ModelError(f"{source}: a {arch} model needs the components {', '.join(missing)}, "
                         f"which it does not have (it has {present})")
