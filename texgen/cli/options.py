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
