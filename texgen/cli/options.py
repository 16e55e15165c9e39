"""Option tables shared by the job commands: flags that map onto a settings dataclass.

Every flag defaults to None, so a ``--config`` file's values stay unless a flag is given.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# flag -> (settings key, type, help)
OptionTable = dict[str, tuple[str, Any, str]]


def add_options(parser: argparse.ArgumentParser, table: OptionTable, title: str) -> argparse._ArgumentGroup:
    """Add the table's flags and ``--config`` to a group of ``parser``; returns the group."""
    group = parser.add_argument_group(title)
    for flag, (key, kind, text) in table.items():
        group.add_argument(flag, dest=key, type=kind, default=None, help=text)
    group.add_argument("--config", type=Path, metavar="FILE.toml", help="defaults from a TOML settings file")
    return group


def settings_values(args: argparse.Namespace, table: OptionTable, cls: type, section: str) -> dict[str, Any]:
    """``cls``'s values from ``[section]`` of --config (or its defaults), then the flags given."""
    from ..settings import load_toml

    settings = load_toml(args.config, cls, section=section) if args.config else cls()
    values = settings.to_dict()
    for key, _, _ in table.values():
        if getattr(args, key, None) is not None:
            values[key] = getattr(args, key)
    return values


# flag -> (LoadOptions key, help): flags that take a value, and flags that turn an option on
LOAD_VALUES = {
    "--dtype": ("dtype", "auto (fp16 on a GPU, fp32 on the CPU), fp16, bf16 or fp32"),
    "--scheduler": ("scheduler", "unipc (default), ddim, euler, dpm++, or model (its own)"),
}
LOAD_SWITCHES = {
    "--cpu-offload": ("cpu_offload", "keep the models in CPU memory, each on the GPU only while it runs (less VRAM)"),
    "--vae-tiling": ("vae_tiling", "decode images in tiles (less VRAM for large views)"),
    "--vae-slicing": ("vae_slicing", "decode one view at a time (less VRAM for large batches)"),
    "--channels-last": ("channels_last", "channels-last memory format for the UNet and ControlNet"),
    "--compile": ("compile", "torch.compile the UNet and ControlNet: the first call takes a minute or two, "
                             "then each step about a quarter less time on an H100-class GPU"),
    "--offline": ("local_files_only", "never download models (like HF_HUB_OFFLINE=1)"),
}


def add_load_options(parser: argparse.ArgumentParser, *, in_config: bool = True) -> None:
    """Flags for :class:`texgen.settings.LoadOptions`: how this machine loads and runs the model."""
    title = "model loading" + (" (also keys of --config's [loading] table)" if in_config else "")
    group = parser.add_argument_group(title)
    for flag, (key, text) in LOAD_VALUES.items():
        group.add_argument(flag, dest=key, default=None, help=text)
    for flag, (key, text) in LOAD_SWITCHES.items():
        group.add_argument(flag, dest=key, action="store_true", default=None, help=text)


def given_load_flags(args: argparse.Namespace) -> dict[str, str]:
    """The loading flags given on the command line, with their LoadOptions keys."""
    return {flag: key for flag, (key, _) in (LOAD_VALUES | LOAD_SWITCHES).items()
            if getattr(args, key, None) is not None}


def load_options_from_args(args: argparse.Namespace):
    """LoadOptions from --config's [loading] table (when the command has --config), then the flags given."""
    from ..settings import LOADING_SECTION, LoadOptions, load_toml, settings_from_mapping

    config = getattr(args, "config", None)
    values = load_toml(config, LoadOptions, section=LOADING_SECTION).to_dict() if config else {}
    values.update({key: getattr(args, key) for key in given_load_flags(args).values()})
    return settings_from_mapping(LoadOptions, values, where="options")


def load_options_for(args: argparse.Namespace, remote: str = ""):
    """The LoadOptions of a job that runs here, or None for one that runs on a server (``remote``
    names it), which loads its models with its own: a loading flag given then is a ConfigError."""
    if not remote:
        return load_options_from_args(args)
    from ..errors import ConfigError

    given = given_load_flags(args)
    if given:
        raise ConfigError(f"{' '.join(given)}: {remote} loads its models once for every job; "
                          "give these to `texgen serve` instead")
    return None
