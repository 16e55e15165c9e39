"""Typed settings, one dataclass per concern, filled from CLI flags, TOML or the wire.

The same field names are used everywhere: the CLI flag ``--view-size`` is the TOML key
``view_size`` is the wire option ``view_size``.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Union, get_args, get_origin, get_type_hints

from .errors import ConfigError

DEFAULT_MODEL = "sd15-controlnet-depth"
DTYPE_NAMES = ("fp16", "bf16", "fp32")
SCHEDULERS = {"unipc": "UniPCMultistepScheduler", "ddim": "DDIMScheduler", "euler": "EulerDiscreteScheduler",
              "dpm++": "DPMSolverMultistepScheduler", "model": None}  # name -> diffusers class; model: its own
LOADING_SECTION = "loading"  # the settings file's table of LoadOptions, beside [texture] or [inpaint_seams]


@dataclass
class TextureSettings:
    """Everything that decides what ``texture_mesh`` paints.

    views : a number of views from the default schedule, or "auto" for next-best-view selection
    view_size : square view resolution in pixels (multiple of 8)
    texture_size : square UV texture resolution in texels
    init_texture : "" paints from nothing; "mesh" starts from the mesh's own base-colour map, a path
        from that image: each view then repaints what it sees of it with ``init_strength``, and what
        no view sees keeps it
    """

    prompt: str = ""
    negative_prompt: str = ""
    model: str = DEFAULT_MODEL
    views: Union[int, str] = 8
    max_views: int = 12
    view_size: int = 768
    texture_size: int = 1024
    steps: int = 25
    guidance: float = 7.5
    controlnet_scale: float = 1.0
    seed: int = 0
    direction_prompts: bool = True
    refine_strength: float = 0.4
    init_texture: str = ""
    init_strength: float = 0.6
    unwrap: str = "auto"
    object: str = ""
    device: str = "auto"
    pad: int = 8

    def validate(self) -> "TextureSettings":
        """Check every value; raise ConfigError naming the first bad key."""
        if isinstance(self.views, str) and self.views != "auto":
            try:
                self.views = int(self.views)
            except ValueError:
                raise ConfigError(f"views: expected a number or 'auto', got {self.views!r}") from None
        if isinstance(self.views, int) and not 1 <= self.views <= 64:
            raise ConfigError(f"views: must be between 1 and 64, got {self.views}")
        if not 1 <= self.max_views <= 64:
            raise ConfigError(f"max_views: must be between 1 and 64, got {self.max_views}")
        if self.view_size < 64 or self.view_size > 4096 or self.view_size % 8:
            raise ConfigError(f"view_size: must be a multiple of 8 between 64 and 4096, got {self.view_size}")
        if self.texture_size < 16 or self.texture_size > 16384:
            raise ConfigError(f"texture_size: must be between 16 and 16384, got {self.texture_size}")
        if not 1 <= self.steps <= 1000:
            raise ConfigError(f"steps: must be between 1 and 1000, got {self.steps}")
        if self.guidance < 0:
            raise ConfigError(f"guidance: must be >= 0, got {self.guidance}")
        if not 0.0 <= self.refine_strength <= 1.0:
            raise ConfigError(f"refine_strength: must be in [0, 1], got {self.refine_strength}")
        if not 0.0 <= self.init_strength <= 1.0:
            raise ConfigError(f"init_strength: must be in [0, 1], got {self.init_strength}")
        if self.unwrap not in ("auto", "always", "never"):
            raise ConfigError(f"unwrap: must be auto, always or never, got {self.unwrap!r}")
        if not 0 <= self.pad <= 256:
            raise ConfigError(f"pad: must be between 0 and 256 texels, got {self.pad}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class LoadOptions:
    """How a machine loads and runs a model; not what is painted (a server sets them for every job).

    Part of the model cache key. The TOML table ``[loading]`` and flags such as ``--cpu-offload``.

    dtype : "auto" (fp16 on cuda and mps, fp32 on cpu), "fp16", "bf16" or "fp32"
    cpu_offload : keep models in CPU memory and move each to the GPU only while it runs
    vae_tiling, vae_slicing : decode in tiles / one view at a time, for less VAE memory
    channels_last : channels-last memory format for the UNet and ControlNet
    compile : torch.compile the UNet and ControlNet for fixed shapes (slow first call)
    scheduler : a SCHEDULERS key; "model" keeps the model's own
    local_files_only : never download (also implied by HF_HUB_OFFLINE=1)
    """

    dtype: str = "auto"
    cpu_offload: bool = False
    vae_tiling: bool = False
    vae_slicing: bool = False
    channels_last: bool = False
    compile: bool = False
    scheduler: str = "unipc"
    local_files_only: bool = False

    def __post_init__(self) -> None:
        """Raise ConfigError naming a bad dtype or scheduler (frozen: checked once, when made)."""
        if self.dtype != "auto" and self.dtype not in DTYPE_NAMES:
            raise ConfigError(f"dtype: must be auto, {', '.join(DTYPE_NAMES)}; got {self.dtype!r}")
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(f"scheduler: must be one of {', '.join(SCHEDULERS)}; got {self.scheduler!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def settings_from_mapping(cls: type, values: Mapping[str, Any], *, where: str = "settings") -> Any:
    """Build dataclass ``cls`` from a mapping, checking key names and value types.

    Unknown keys and values of the wrong type raise ConfigError naming the key and ``where``.
    """
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(f"{where}: unknown key {key!r}; known keys: {', '.join(sorted(names))}")
        kwargs[key] = _coerce(key, value, hints[key], where)
    try:
        obj = cls(**kwargs)
        validate = getattr(obj, "validate", None)
        if validate is not None:
            validate()
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return obj


def _coerce(key: str, value: Any, hint: Any, where: str) -> Any:
    allowed = get_args(hint) if get_origin(hint) is Union else (hint,)
    for kind in allowed:
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind in (str, bool) and isinstance(value, kind):
            return value
    names = " or ".join(getattr(kind, "__name__", str(kind)) for kind in allowed)
    raise ConfigError(f"{where}: key {key!r} must be {names}, got {type(value).__name__} {value!r}")


def read_toml_table(path: Union[str, Path], section: str, error: type[Exception] = ConfigError,
                    what: str = "settings file") -> dict[str, Any]:
    """The ``[section]`` table of a TOML file; when there is none, its top level (less a ``[loading]``
    table), or nothing for ``section`` "loading".

    A missing or malformed file raises ``error`` naming the file.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None
    if section in data:
        return data[section]
    if section == LOADING_SECTION:
        return {}
    return {key: value for key, value in data.items() if key != LOADING_SECTION}


def load_toml(path: Union[str, Path], cls: type = TextureSettings, section: str = "texture") -> Any:
    """Read ``[section]`` (or the top level when absent) of a TOML file into ``cls``."""
    return settings_from_mapping(cls, read_toml_table(path, section), where=str(path))


__all__ = ["TextureSettings", "LoadOptions", "DEFAULT_MODEL", "settings_from_mapping", "load_toml"]
