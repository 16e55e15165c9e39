"""Model specs -> loaded generators: presets, hub ids, local folders, single files, model cards.

A spec is one of:

* a preset name from PRESETS, such as the default ``sd15-controlnet-depth``;
* ``random:ARCH``: the full-size ARCH (see ARCHITECTURES) with random weights, no download,
  for benchmarks; it times like the real weights;
* a TOML model card (``*.toml``) naming ``base`` and optionally ``controlnet``,
  ``inpaint_unet`` and ``vae``; each is a string or a table ``{ path = ..., subfolder = ...,
  config = ... }``, where ``config`` (a diffusers folder or hub id) goes with a single file
  and relative paths are relative to the card; and ``lora``: one LoRA or a list, each a path
  (a ``.safetensors`` file, a folder or a hub id) or a table ``{ path = ..., scale = 0.8,
  weight_name = ..., subfolder = ... }``, fused into the base model (:func:`fuse_loras`);
* a local diffusers pipeline folder, a hub id ``org/name``, or a single ``.safetensors`` /
  ``.ckpt`` checkpoint of a whole pipeline;
* ``oracle:PATH``, which texgen.eval handles.

Offline (``HF_HUB_OFFLINE=1`` or ``local_files_only``) nothing is downloaded, and a missing
model raises ModelError listing where it was looked for. Loaded generators are cached by
spec, device and options until :func:`release` or :func:`release_all`.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import json
import logging
import os
import re
import threading
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import torch

from ..errors import ModelError, OutOfMemoryError, TexgenError
from ..settings import DTYPE_NAMES, SCHEDULERS, LoadOptions, read_toml_table
from .backend import is_out_of_memory
from .base import Generator

log = logging.getLogger(__name__)


class _WithoutTorchvisionAdvice(logging.Filter):
    """transformers advises installing torchvision when diffusers' pipelines import its image processors,
    which texgen never runs (it loads no feature extractor); on the CPU build of torch, PyPI's
    torchvision would not even import."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "requires torchvision" not in record.getMessage()


logging.getLogger("transformers.utils.import_utils").addFilter(_WithoutTorchvisionAdvice())

DTYPES = dict(zip(DTYPE_NAMES, (torch.float16, torch.bfloat16, torch.float32)))
# components texgen never uses: passed as None so they are neither loaded nor downloaded
_UNUSED = ("safety_checker", "feature_extractor", "depth_estimator", "image_encoder")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(/[\w.-]+)*$")
_CARD_KEYS = ("base", "controlnet", "inpaint_unet", "vae", "lora")
_LORA_KEYS = ("path", "scale", "weight_name", "subfolder")


@dataclass(frozen=True)
class ModelRef:
    """Where one model comes from: a local folder or file, or a hub id (``org/name[/subfolder]``).

    config : for a single file, a diffusers folder or hub id holding its configs
    base_dir : the model card's folder, against which a relative path is tried first
    """

    location: str
    subfolder: Optional[str] = None
    config: Optional[str] = None
    base_dir: Optional[Path] = None


@dataclass(frozen=True)
class LoraRef:
    """A LoRA of a model card: where it is, which file of a folder or repo (``weight_name``, None when
    it holds one), and the scale it is fused with."""

    ref: ModelRef
    scale: float = 1.0
    weight_name: Optional[str] = None


@dataclass(frozen=True)
class ModelCard:
    """The models one generator is built from, and the LoRAs fused into them."""

    base: ModelRef
    controlnet: Optional[ModelRef] = None
    inpaint_unet: Optional[ModelRef] = None
    vae: Optional[ModelRef] = None
    loras: tuple[LoraRef, ...] = ()


PRESETS: dict[str, ModelCard] = {
    "sd15-controlnet-depth": ModelCard(ModelRef("stable-diffusion-v1-5/stable-diffusion-v1-5"),
                                       controlnet=ModelRef("lllyasviel/control_v11f1p_sd15_depth")),
    "sdxl-controlnet-depth": ModelCard(ModelRef("stabilityai/stable-diffusion-xl-base-1.0"),
                                       controlnet=ModelRef("diffusers/controlnet-depth-sdxl-1.0"),
                                       vae=ModelRef("madebyollin/sdxl-vae-fp16-fix")),
    "sd2-depth": ModelCard(ModelRef("stabilityai/stable-diffusion-2-depth")),
}


# Devices ----------------------------------------------------------------------------------------

def pick_device(device: str = "auto") -> torch.device:
    """"auto" -> cuda, then mps, then cpu; otherwise the named device, which must exist."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    chosen = torch.device(device)
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} asked for, but torch sees no CUDA GPU (torch {torch.__version__})")
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise ModelError(f"device {device!r} asked for, but MPS is not available")
    return chosen


def pick_dtype(device: torch.device, dtype: str = "auto") -> torch.dtype:
    """fp16 on a GPU and fp32 on the CPU unless ``dtype`` names one."""
    if dtype == "auto":
        return torch.float32 if device.type == "cpu" else torch.float16
    return DTYPES[dtype]


def offline(options: LoadOptions) -> bool:
    """True when nothing may be downloaded."""
    return options.local_files_only or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


# Specs and model cards --------------------------------------------------------------------------

def _ref(value: Any, key: str, base_dir: Optional[Path], where: str) -> ModelRef:
    if isinstance(value, str):
        return ModelRef(value, base_dir=base_dir)
    if isinstance(value, dict) and isinstance(value.get("path"), str):
        unknown = set(value) - {"path", "subfolder", "config"}
        if unknown:
            raise ModelError(f"{where}: {key} has unknown keys {', '.join(sorted(unknown))}; "
                             "known: path, subfolder, config")
        return ModelRef(value["path"], value.get("subfolder"), value.get("config"), base_dir)
    raise ModelError(f"{where}: {key} must be a string or a table with a 'path', got {value!r}")


def _lora(value: Any, base_dir: Path, where: str) -> LoraRef:
    """One entry of a card's ``lora``: a path, or a table of _LORA_KEYS."""
    if isinstance(value, str):
        return LoraRef(ModelRef(value, base_dir=base_dir))
    if not (isinstance(value, dict) and isinstance(value.get("path"), str)):
        raise ModelError(f"{where}: each lora must be a path or a table with a 'path', got {value!r}")
    if unknown := set(value) - set(_LORA_KEYS):
        raise ModelError(f"{where}: a lora has unknown keys {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(_LORA_KEYS)}")
    scale = value.get("scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale != scale:
        raise ModelError(f"{where}: the scale of lora {value['path']!r} must be a number, got {scale!r}")
    for key in ("weight_name", "subfolder"):
        if not isinstance(value.get(key, ""), str):
            raise ModelError(f"{where}: the {key} of lora {value['path']!r} must be a string, got {value[key]!r}")
    return LoraRef(ModelRef(value["path"], value.get("subfolder"), base_dir=base_dir), float(scale),
                   value.get("weight_name"))


def read_card(path: Union[str, Path]) -> ModelCard:
    """Parse a TOML model card (top level or a ``[model]`` table)."""
    path = Path(path)
    table = read_toml_table(path, "model", ModelError, "model card")
    unknown = set(table) - set(_CARD_KEYS)
    if unknown:
        raise ModelError(f"{path}: unknown keys {', '.join(sorted(unknown))}; known: {', '.join(_CARD_KEYS)}")
    if "base" not in table:
        raise ModelError(f"{path}: a model card needs 'base' (a hub id, diffusers folder or checkpoint)")
    base_dir = path.parent.resolve()
    refs = {key: _ref(table[key], key, base_dir, str(path)) for key in _CARD_KEYS if key in table and key != "lora"}
    loras = table.get("lora", [])
    loras = tuple(_lora(value, base_dir, str(path)) for value in (loras if isinstance(loras, list) else [loras]))
    return ModelCard(**refs, loras=loras)


def resolve_spec(spec: str) -> ModelCard:
    """The model card of a spec string (not ``random:`` or ``oracle:``)."""
    if spec in PRESETS:
        return PRESETS[spec]
    if spec.endswith(".toml"):
        return read_card(spec)
    return ModelCard(ModelRef(spec))


def _hub_cache_dir(repo: str) -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / ("models--" + repo.replace("/", "--"))


@dataclass(frozen=True)
class _Located:
    """Where a ModelRef was found: a local path, or a hub repo; ``tried`` lists local paths tried."""

    location: str
    subfolder: Optional[str]
    local: bool
    tried: tuple[str, ...] = ()


def _locate(ref: ModelRef, what: str) -> _Located:
    """Find ``ref`` locally, else treat it as a hub id; ModelError lists every place looked at."""
    raw = Path(ref.location).expanduser()
    candidates = [raw] if raw.is_absolute() or ref.base_dir is None else [ref.base_dir / raw, raw]
    for candidate in candidates:
        if candidate.exists():
            return _Located(str(candidate.resolve()), ref.subfolder, True)
    tried = tuple(str(c.resolve()) for c in candidates)
    if _HUB_ID.match(ref.location) and not ref.location.startswith(("./", "../", "~")):
        parts = ref.location.split("/")
        return _Located("/".join(parts[:2]), ref.subfolder or "/".join(parts[2:]) or None, False, tried)
    raise ModelError(f"{what} {ref.location!r} not found; looked at: {', '.join(tried)}")


def _config_location(ref: ModelRef) -> Optional[str]:
    """``ref.config`` as a local folder, relative to the model card first, else as written (a hub id)."""
    if ref.config is None:
        return None
    raw = Path(ref.config).expanduser()
    for candidate in [raw] if raw.is_absolute() or ref.base_dir is None else [ref.base_dir / raw, raw]:
        if candidate.is_dir():
            return str(candidate.resolve())
    return ref.config


def _folder_report(folder: Path, index: dict[str, Any]) -> str:
    """One line per component of a pipeline folder: the files present, or 'missing'."""
    lines = ["files in each component folder:"]
    for name, entry in sorted(index.items()):
        if name.startswith("_") or not isinstance(entry, list) or entry[0] is None:
            continue
        sub = folder / name
        files = sorted(p.name for p in sub.iterdir()) if sub.is_dir() else []
        lines.append(f"  {sub}/: {', '.join(files) if files else 'missing'}")
    return "\n".join(lines)


@contextlib.contextmanager
def _load_errors(what: str, where: str, detail: str = "") -> Iterator[None]:
    """Turn the many exceptions of diffusers / huggingface_hub loading into ModelError."""
    try:
        yield
    except TexgenError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        if is_out_of_memory(exc):
            raise OutOfMemoryError(f"out of memory loading {what} from {where}; try cpu_offload (--cpu-offload) "
                                   "or dtype fp16 (--dtype fp16)") from exc
        raise ModelError(f"could not load {what} from {where}: {exc}" + (f"\n{detail}" if detail else "")) from exc


def _hub_looked(found: _Located, is_offline: bool) -> str:
    mode = "offline (HF_HUB_OFFLINE=1 or local_files_only), so nothing was downloaded" if is_offline else "online"
    lines = ["looked at:"] + [f"  a local folder at {path}: not there" for path in found.tried]
    lines.append(f"  the hub cache {_hub_cache_dir(found.location)} ({mode}); "
                 "download the model once online, or point to a local folder")
    return "\n".join(lines)


def _model_index(found: _Located, is_offline: bool) -> dict[str, Any]:
    """The model_index.json of a pipeline folder or hub repo."""
    if found.local:
        path = Path(found.location) / "model_index.json"
        if not path.is_file():
            raise ModelError(f"{found.location} is not a diffusers pipeline folder: looked for {path}. A single "
                             "model folder (config.json) can be a controlnet, vae or inpaint_unet in a model card")
    else:
        from huggingface_hub import hf_hub_download

        with _load_errors("the model", found.location, _hub_looked(found, is_offline)):
            path = Path(hf_hub_download(found.location, "model_index.json", local_files_only=is_offline))
    return json.loads(path.read_text())


def _dtype_kwargs(dtype: torch.dtype) -> dict[str, torch.dtype]:
    """``dtype=`` for diffusers versions that renamed ``torch_dtype`` (0.36+), else ``torch_dtype=``."""
    import diffusers.utils

    return {"dtype" if hasattr(diffusers.utils, "_resolve_dtype") else "torch_dtype": dtype}


def _unused_kwargs(pipeline_class: type) -> dict[str, None]:
    names = inspect.signature(pipeline_class.__init__).parameters
    return {name: None for name in _UNUSED if name in names}


def _checkpoint_shapes(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint as empty meta tensors of their shapes; no weights are read."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            return {key: torch.empty(f.get_slice(key).get_shape(), device="meta") for key in f.keys()}
    state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    state = state.get("state_dict", state)
    return {key: torch.empty(value.shape, device="meta") for key, value in state.items()
            if isinstance(value, torch.Tensor)}


def _single_file_pipeline(path: Path, shapes: dict[str, torch.Tensor]) -> tuple[str, Optional[str]]:
    """(pipeline class, default config) for a whole-pipeline checkpoint, from its keys and shapes."""
    first_conv = "model.diffusion_model.input_blocks.0.0.weight"
    in_channels = shapes[first_conv].shape[1] if first_conv in shapes else 0
    if any(k.startswith("conditioner.embedders.1.") for k in shapes):
        return "StableDiffusionXLPipeline", None
    if in_channels == 5:
        return "StableDiffusionDepth2ImgPipeline", "stabilityai/stable-diffusion-2-depth"
    if not in_channels:
        raise ModelError(f"{path}: not a Stable Diffusion checkpoint in the original layout (no {first_conv}); "
                         "a single file of one model (controlnet, vae, unet) goes in a model card")
    return "StableDiffusionPipeline", None


def _offline_config(config: Optional[str], shapes: dict[str, torch.Tensor], path: Path) -> str:
    """A local folder with the configs of a whole-pipeline checkpoint, found without the network.

    Given a hub id (or none, when it guesses one from the keys) whose configs are not in the hub
    cache, diffusers' ``from_single_file`` downloads them even with ``local_files_only`` (its
    LocalEntryNotFoundError fallback); a local folder keeps it offline.
    """
    if config is not None and Path(config).is_dir():
        return config
    from diffusers.loaders.single_file_utils import fetch_diffusers_config
    from huggingface_hub import snapshot_download

    repo = config or fetch_diffusers_config(shapes)["pretrained_model_name_or_path"]
    try:
        return snapshot_download(repo, local_files_only=True)
    except (OSError, ValueError) as exc:
        where = (f"config {repo!r} is not a local folder, nor" if config else
                 f"diffusers takes its configs from {repo}, which is not") + f" in the hub cache {_hub_cache_dir(repo)}"
        raise ModelError(
            f"{path}: {where}, and offline (HF_HUB_OFFLINE=1 or local_files_only) nothing is downloaded. Download "
            "it once online, or give the checkpoint a local diffusers folder of its architecture in a model card: "
            f'base = {{ path = "{path.name}", config = "FOLDER" }}') from exc


def _load_base(ref: ModelRef, dtype: torch.dtype, is_offline: bool) -> Any:
    """The base model's diffusers pipeline."""
    import diffusers

    found = _locate(ref, "model")
    location = found.location
    if found.local and Path(location).is_file():
        shapes = _checkpoint_shapes(Path(location))
        class_name, default_config = _single_file_pipeline(Path(location), shapes)
        config = _config_location(ref) or default_config
        if is_offline:
            config = _offline_config(config, shapes, Path(location))
        pipeline_class = getattr(diffusers, class_name)
        detail = f"configs from {config}" if config else "configs guessed by diffusers from the checkpoint's keys"
        with _load_errors("the checkpoint", location, detail):
            pipe = pipeline_class.from_single_file(location, config=config, **_dtype_kwargs(dtype),
                                                   local_files_only=is_offline, **_unused_kwargs(pipeline_class))
    else:
        index = _model_index(found, is_offline)
        detail = _folder_report(Path(location), index) if found.local else _hub_looked(found, is_offline)
        unused = {name: None for name in _UNUSED if name in index}
        with _load_errors("the model", location, detail):
            pipe = diffusers.DiffusionPipeline.from_pretrained(location, **_dtype_kwargs(dtype),
                                                               local_files_only=is_offline, **unused)
    return pipe


# card key -> (diffusers model class, the model's subfolder name inside a pipeline)
_CARD_MODELS = {"controlnet": ("ControlNetModel", "controlnet"), "vae": ("AutoencoderKL", "vae"),
                "inpaint_unet": ("UNet2DConditionModel", "unet")}


def _load_model(ref: ModelRef, key: str, dtype: torch.dtype, is_offline: bool) -> Any:
    """The model of card entry ``key`` from a model folder, a pipeline folder, a file or the hub.

    A local pipeline folder is read from its subfolder (controlnet, vae, unet). On the hub
    only UNets default to their subfolder: inpainting UNets ship inside pipeline repos,
    ControlNets and VAEs as repos of their own.
    """
    import diffusers

    class_name, component = _CARD_MODELS[key]
    model_class = getattr(diffusers, class_name)
    found = _locate(ref, key)
    location, subfolder = found.location, found.subfolder
    if found.local and Path(location).is_file():
        config = _config_location(ref)
        detail = f"configs from {config}" if config else "configs guessed by diffusers from the file's keys"
        with _load_errors(key, location, detail):
            return model_class.from_single_file(location, config=config, **_dtype_kwargs(dtype),
                                                local_files_only=is_offline)
    if found.local:
        folder = Path(location)
        if subfolder is None and not (folder / "config.json").is_file():
            subfolder = component
        detail = f"looked for {folder / (subfolder or '') / 'config.json'} and its weights"
    else:
        subfolder = subfolder or ("unet" if component == "unet" else None)
        detail = _hub_looked(found, is_offline)
    with _load_errors(key, location, detail):
        return model_class.from_pretrained(location, subfolder=subfolder, **_dtype_kwargs(dtype),
                                           local_files_only=is_offline)


def load_components(card: ModelCard, *, dtype: torch.dtype, is_offline: bool) -> dict[str, Any]:
    """The components of ``card``: the base pipeline's, with the card's models added or replaced and
    its LoRAs fused in."""
    with _without_loading_bars():
        pipe = _load_base(card.base, dtype, is_offline)
        components = {name: value for name, value in pipe.components.items() if value is not None}
        for key in _CARD_MODELS:
            ref = getattr(card, key)
            if ref is not None:
                components[key] = _load_model(ref, key, dtype, is_offline)
    if card.loras:
        fuse_loras(pipe, card.loras, is_offline, inpaint_unet=components.get("inpaint_unet"))
    return components


@contextlib.contextmanager
def _without_loading_bars() -> Iterator[None]:
    """Turn off diffusers' and transformers' progress bars over loading ("Loading pipeline components",
    "Loading weights"): they break up texgen's own progress display, which shows the load as a stage.
    Downloads keep huggingface_hub's bars."""
    import diffusers
    import transformers

    switches = [module.utils.logging for module in (diffusers, transformers)]
    enabled = [switch.is_progress_bar_enabled() for switch in switches]
    for switch in switches:
        switch.disable_progress_bar()
    try:
        yield
    finally:
        for switch, was_enabled in zip(switches, enabled):
            if was_enabled:
                switch.enable_progress_bar()


@contextlib.contextmanager
def _lora_shapes(where: str, model: str) -> Iterator[None]:
    """A LoRA whose weights have other shapes than the model's: one line, not torch's list of every weight
    (which diffusers would also log, as an error, before raising it)."""
    peft_log = logging.getLogger("diffusers.loaders.peft")
    level = peft_log.level
    peft_log.setLevel(logging.CRITICAL)
    try:
        yield
    except RuntimeError as exc:
        first = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), None)
        if first is None:
            raise
        raise ModelError(f"the LoRA {where} does not fit {model}: its weights have other shapes (a LoRA of "
                         f"another architecture?); the first: {first}") from None
    finally:
        peft_log.setLevel(level)


def fuse_loras(pipe: Any, loras: tuple[LoraRef, ...], is_offline: bool, inpaint_unet: Optional[Any] = None) -> None:
    """Fuse ``loras``, each at its scale, into ``pipe``'s UNet and text encoders (and a card's
    ``inpaint_unet``, whose attention layers are the UNet's), then drop the LoRA layers: the
    models run as fast as without them. Raises ModelError for a LoRA that cannot be read, fits
    none of the models (a LoRA of another architecture), or whose shapes do not fit."""
    names = [f"lora{index}" for index in range(len(loras))]
    for name, lora in zip(names, loras):
        found = _locate(lora.ref, "LoRA")
        where = found.location if found.local else f"{found.location} on the hub"
        kwargs = dict(weight_name=lora.weight_name, subfolder=found.subfolder, local_files_only=is_offline)
        detail = "" if found.local else _hub_looked(found, is_offline)
        with _load_errors("the LoRA", where, detail), _lora_shapes(where, type(pipe).__name__), \
                warnings.catch_warnings():
            # peft warns that a model holding one adapter gets another: several LoRAs are meant to
            warnings.filterwarnings("ignore", "Already found a `peft_config`", UserWarning)
            pipe.load_lora_weights(found.location, adapter_name=name, **kwargs)
            if not any(name in adapters for adapters in pipe.get_list_adapters().values()):
                raise ModelError(f"the LoRA {where} fits none of the model's parts (no UNet or text encoder "
                                 f"weights of {type(pipe).__name__}): a LoRA of another architecture?")
            if inpaint_unet is not None:
                state, alphas = pipe.lora_state_dict(found.location, **kwargs)
                pipe.load_lora_into_unet(state, alphas, unet=inpaint_unet, adapter_name=name)
    scales = [lora.scale for lora in loras]
    with _load_errors("the LoRAs", ", ".join(lora.ref.location for lora in loras)):
        pipe.set_adapters(names, adapter_weights=scales)
        pipe.fuse_lora(adapter_names=names)
        pipe.unload_lora_weights()
        if inpaint_unet is not None:
            inpaint_unet.set_adapters(names, weights=scales)
            inpaint_unet.fuse_lora(adapter_names=names)
            inpaint_unet.unload_lora()


# Building and caching generators ----------------------------------------------------------------

def _prepare(components: dict[str, Any], device: torch.device, options: LoadOptions) -> None:
    """Apply the options to ``components`` in place and move them to ``device``."""
    import diffusers

    if SCHEDULERS[options.scheduler] is not None:
        scheduler_class = getattr(diffusers, SCHEDULERS[options.scheduler])
        components["scheduler"] = scheduler_class.from_config(components["scheduler"].config)
    denoisers = [name for name in ("unet", "inpaint_unet", "controlnet") if name in components]
    if options.vae_tiling:
        components["vae"].enable_tiling()
    if options.vae_slicing:
        components["vae"].enable_slicing()
    for name, component in components.items():
        if isinstance(component, torch.nn.Module):
            if name in denoisers and options.channels_last:
                component.to(memory_format=torch.channels_last)
            if not options.cpu_offload:
                component.to(device)
    if options.compile:
        for name in denoisers:
            components[name] = torch.compile(components[name], dynamic=False)


def build_generator(spec: str, *, device: str = "auto", options: Optional[LoadOptions] = None) -> Generator:
    """Load ``spec`` without the cache (see :func:`load_generator`)."""
    from .registry import ARCHITECTURES, detect_architecture
    from .tiny import build_components

    options = options or LoadOptions()
    target = pick_device(device)
    dtype = pick_dtype(target, options.dtype)
    if options.cpu_offload and target.type == "cpu":
        log.info("cpu_offload has no effect on the CPU; ignored")
        options = replace(options, cpu_offload=False)
    if spec.startswith("random:"):
        arch = spec.removeprefix("random:")
        if arch not in ARCHITECTURES:
            raise ModelError(f"{spec}: unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
        build_device = torch.device("cpu") if options.cpu_offload else target
        with _load_errors("random weights", spec):
            components = build_components(arch, "full", device=build_device, dtype=dtype)
        loras = ()
    else:
        card = resolve_spec(spec)
        components = load_components(card, dtype=dtype, is_offline=offline(options))
        loras = [{"path": lora.ref.location, "weight_name": lora.weight_name, "scale": lora.scale}
                 for lora in card.loras]
    arch = detect_architecture(components, spec)
    _prepare(components, target, options)
    generator = ARCHITECTURES[arch](components, name=spec, device=target, dtype=dtype,
                                    load_options=options, loras=loras)
    log.info("loaded %s as %s on %s (%s)", spec, arch, target, str(dtype).removeprefix("torch."))
    return generator


_CACHE: dict[tuple[str, str, LoadOptions], Generator] = {}
_CACHE_LOCK = threading.Lock()


def _cache_key(spec: str, device: str, options: Optional[LoadOptions]) -> tuple[str, str, LoadOptions]:
    path = Path(spec).expanduser()
    return (str(path.resolve()) if path.exists() else spec), device, options or LoadOptions()


def load_generator(spec: str, *, device: str = "auto", options: Optional[LoadOptions] = None) -> Generator:
    """The generator for a model spec (see the module docstring), loaded once and then cached.

    ``oracle:PATH`` specs go to :class:`texgen.eval.OracleGenerator` and are not cached here.
    Raises ModelError for a missing, unreadable or wrong-type model.
    """
    if spec.startswith("oracle:"):
        from ..eval import OracleGenerator

        return OracleGenerator.from_spec(spec)
    key = _cache_key(spec, device, options)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = build_generator(spec, device=device, options=options)
        return _CACHE[key]


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def release(spec: str, *, device: str = "auto", options: Optional[LoadOptions] = None) -> bool:
    """Drop one cached generator; True if it was cached. Memory is freed once no one else holds it."""
    with _CACHE_LOCK:
        found = _CACHE.pop(_cache_key(spec, device, options), None) is not None
    if found:
        _free_memory()
    return found


def release_all() -> int:
    """Drop every cached generator; returns how many there were."""
    with _CACHE_LOCK:
        count = len(_CACHE)
        _CACHE.clear()
    _free_memory()
    return count
