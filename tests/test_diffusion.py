"""The diffusion backends on tiny real models: shapes, determinism, masks, progress, cancel."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from texgen.diffusion.backend import LatentBlend, oom_message  # noqa: E402
from texgen.diffusion.base import SamplerSettings, ViewBatch, cast_dtype  # noqa: E402
from texgen.diffusion.loading import build_generator  # noqa: E402
from texgen.errors import Cancelled  # noqa: E402
from texgen.progress import CancelToken, ProgressEvent  # noqa: E402

ARCHS = ("sd15-controlnet", "sdxl-controlnet", "sd2-depth")
SIZE = 64
STEPS = 4
SAMPLER = SamplerSettings(steps=STEPS, guidance=5.0, seed=7, preview_every=2)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and lose a lot when other jobs share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def generators(tiny_model_dir: Callable[..., Path]) -> dict:
    return {arch: build_generator(str(tiny_model_dir(arch)), device="cpu") for arch in ARCHS}


def depth_views(count: int = 2, size: int = SIZE) -> torch.Tensor:
    """(count, size, size) depth of a sphere, near = 1, background = 0, shifted per view."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    views = []
    for i in range(count):
        r2 = (xs - 0.2 * i) ** 2 + ys**2
        views.append(torch.where(r2 < 0.6, 0.3 + 0.7 * torch.sqrt((0.6 - r2).clamp(min=0) / 0.6), 0.0))
    return torch.stack(views)


def painted(count: int = 2, size: int = SIZE) -> torch.Tensor:
    """(count, 3, size, size) a smooth colour ramp standing in for the current paint."""
    ramp = torch.linspace(0, 1, size)
    image = torch.stack([ramp[None, :].expand(size, size), ramp[:, None].expand(size, size),
                         torch.full((size, size), 0.5)])
    return image[None].repeat(count, 1, 1, 1)


def batch(mask: torch.Tensor | None = None, count: int = 2) -> ViewBatch:
    prompts = ["a wooden chair, front view", "a wooden chair, side view"][:count]
    image = None if mask is None else painted(count)
    return ViewBatch(prompts, depth_views(count), negative_prompt="blurry", image=image, mask=mask)


def half_mask(count: int = 2, value: float = 1.0) -> torch.Tensor:
    mask = torch.zeros(count, SIZE, SIZE)
    mask[:, :, SIZE // 2:] = value
    return mask


@pytest.mark.parametrize("arch", ARCHS)
def test_generate_shapes_progress_previews(generators: dict, arch: str) -> None:
    gen = generators[arch]
    assert gen.arch == arch
    events: list[ProgressEvent] = []
    out = gen.generate(batch(), SAMPLER, progress=events.append)
    assert out.shape == (2, 3, SIZE, SIZE) and out.dtype == torch.float32 and out.device.type == "cpu"
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert [(e.stage, e.step, e.steps) for e in events] == [("generate", i + 1, STEPS) for i in range(STEPS)]
    previews = [e.preview for e in events if e.preview is not None]
    assert len(previews) == STEPS // SAMPLER.preview_every
    assert previews[0].dtype == np.uint8 and previews[0].shape == (SIZE // 8, 2 * SIZE // 8, 3)


@pytest.mark.parametrize("arch", ARCHS)
def test_inpaint_keeps_unmasked_pixels(generators: dict, arch: str) -> None:
    mask = half_mask()
    views = batch(mask)
    out = generators[arch].inpaint(views, SAMPLER)
    assert out.shape == (2, 3, SIZE, SIZE) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    keep = (mask == 0)[:, None].expand_as(out)
    # mask == 0 comes back exactly: it is pasted back, as the VAE round trip alone is lossy
    # (with these random tiny VAEs it is not a reconstruction at all)
    assert torch.equal(out[keep], views.image[keep])
    assert (out[~keep] - views.image[~keep]).abs().mean() > 0.02


@pytest.mark.parametrize("arch", ARCHS)
def test_same_seed_same_output_other_seed_differs(generators: dict, arch: str) -> None:
    gen = generators[arch]
    first = gen.generate(batch(), SAMPLER)
    again = gen.generate(batch(), SAMPLER)
    other = gen.generate(batch(), SamplerSettings(steps=STEPS, guidance=5.0, seed=8))
    assert torch.equal(first, again)
    assert (first - other).abs().mean() > 1e-3


def test_batching_does_not_change_a_view(generators: dict) -> None:
    gen = generators["sd15-controlnet"]
    both = gen.generate(batch(), SAMPLER)
    views = batch()
    alone = ViewBatch(views.prompts[1:], views.depth[1:], negative_prompt="blurry", view_indices=[1])
    assert torch.allclose(gen.generate(alone, SAMPLER)[0], both[1], atol=1e-4)


@pytest.mark.parametrize("arch", ["sd15-controlnet", "sdxl-controlnet"])
def test_controlnet_sees_full_resolution_depth(generators: dict, arch: str) -> None:
    """The ControlNet gets the view's depth at full size, near = 1, not downscaled to latent size."""
    seen: list[torch.Tensor] = []
    controlnet = generators[arch].components["controlnet"]
    handle = controlnet.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["controlnet_cond"].detach().clone()), with_kwargs=True)
    try:
        views = batch()
        generators[arch].generate(views, SamplerSettings(steps=1, guidance=5.0))
    finally:
        handle.remove()
    cond = seen[0]
    assert cond.shape == (4, 3, SIZE, SIZE)  # CFG doubles the batch
    assert torch.allclose(cond[2:, 0], views.depth, atol=1e-6)


def test_mask_strength_sets_the_free_steps() -> None:
    strength = torch.tensor([0.0, 0.1, 0.25, 0.5, 0.75, 1.0]).view(1, 1, 1, 6)
    blend = LatentBlend(torch.zeros(1, 4, 1, 6), torch.zeros(1, 4, 1, 6), strength)
    free_steps = [int((~blend.held(step, 4)).sum()) for step in range(4)]
    # per step, how many of the 6 latents may change: m = 1 always, m = 0 never
    assert free_steps == [1, 2, 3, 4]
    assert blend.pixel_mask((8, 48)).shape == (1, 1, 8, 48)


@pytest.mark.parametrize("arch", ARCHS)
def test_refine_changes_less_than_generate(generators: dict, arch: str) -> None:
    """The more steps a pixel is free for, the further it moves from the paint.

    Measured against the paint's own latents decoded (mask 0.01: no free step of 4, and
    nothing pasted back as the mask is not 0), since a random VAE does not reconstruct.
    """
    gen = generators[arch]

    def change(value: float) -> float:
        out = gen.inpaint(batch(torch.full((2, SIZE, SIZE), value)), SAMPLER)
        return float((out - round_trip).abs().mean())

    round_trip = gen.inpaint(batch(torch.full((2, SIZE, SIZE), 0.01)), SAMPLER)
    refine_light, refine, regenerate = change(0.25), change(0.5), change(1.0)
    assert 0 < refine_light < refine < regenerate


@pytest.mark.parametrize("arch", ARCHS)
def test_cancel_raises_and_pipeline_stays_usable(generators: dict, arch: str) -> None:
    gen = generators[arch]
    reference = gen.inpaint(batch(half_mask()), SAMPLER)
    token = CancelToken()
    steps_seen: list[int] = []

    def cancel_after_first(event: ProgressEvent) -> None:
        steps_seen.append(event.step)
        token.cancel()

    with pytest.raises(Cancelled):
        gen.inpaint(batch(half_mask()), SAMPLER, progress=cancel_after_first, cancel=token)
    assert steps_seen == [1]
    assert torch.equal(gen.inpaint(batch(half_mask()), SAMPLER), reference)


def test_cancelled_token_stops_before_any_step(generators: dict) -> None:
    token = CancelToken()
    token.cancel()
    events: list[ProgressEvent] = []
    with pytest.raises(Cancelled):
        generators["sd2-depth"].generate(batch(), SAMPLER, progress=events.append, cancel=token)
    assert events == []


def test_inpainting_unet_generates_and_inpaints(tiny_model_dir: Callable[..., Path]) -> None:
    gen = build_generator(str(tiny_model_dir("sd15-controlnet", inpaint=True)), device="cpu")
    assert gen.pipelines["generate"].unet.config.in_channels == 9
    out = gen.generate(batch(), SAMPLER)
    assert out.shape == (2, 3, SIZE, SIZE) and out.min() >= 0 and out.max() <= 1
    mask = half_mask()
    views = batch(mask)
    inpainted = gen.inpaint(views, SAMPLER)
    keep = (mask == 0)[:, None].expand_as(inpainted)
    assert torch.equal(inpainted[keep], views.image[keep])


def test_bad_inputs_are_named(generators: dict) -> None:
    gen = generators["sd15-controlnet"]
    with pytest.raises(ValueError, match="multiple of 8"):
        gen.generate(ViewBatch(["x"], torch.zeros(1, 60, 64)), SAMPLER)
    with pytest.raises(ValueError, match="image and batch.mask"):
        gen.inpaint(batch(), SAMPLER)
    with pytest.raises(ValueError, match="view_indices"):
        ViewBatch(["x"], torch.zeros(1, 64, 64), view_indices=[0, 1])


def test_oom_message_lists_what_uses_less_memory() -> None:
    message = oom_message("sd15-controlnet-depth", batch(), offloaded=False)
    for tip in ("cpu_offload", "vae_tiling", "vae_slicing", "view_size", "fewer views"):
        assert tip in message


def test_fp16_weights_cast_without_diffusers_float32_warnings() -> None:
    """diffusers warns on every ModelMixin.to(dtype); an fp16 SDXL VAE upcasts for each encode and decode."""
    from diffusers import AutoencoderKL

    from texgen.diffusion.registry import ARCHITECTURES
    from texgen.diffusion.tiny import build_components

    warnings: list[str] = []
    catch = logging.Handler(logging.WARNING)
    catch.emit = lambda record: warnings.append(record.getMessage())
    diffusers_log = logging.getLogger("diffusers")  # its own handler, not propagated to pytest's
    diffusers_log.addHandler(catch)
    try:
        components = build_components("sdxl-controlnet", dtype=torch.float16)
        # the full-size SDXL VAE asks for fp32 (force_upcast), the tiny one not
        vae = components["vae"] = AutoencoderKL.from_config({**components["vae"].config, "force_upcast": True})
        cast_dtype(vae, torch.float16)
        generator = ARCHITECTURES["sdxl-controlnet"](components, name="tiny fp16", device=torch.device("cpu"),
                                                     dtype=torch.float16)
        images = generator.decode(generator.encode(painted(1)))
    finally:
        diffusers_log.removeHandler(catch)
    assert images.shape == (1, 3, SIZE, SIZE) and images.dtype == torch.float32
    assert vae.dtype == torch.float16  # back to fp16 after each pass
    assert not [message for message in warnings if "kept in float32" in message]
