"""Shared test fixtures."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_model_dir() -> Callable[..., Path]:
    """``get(arch, inpaint=False) -> Path`` of a tiny random diffusers model folder.

    Made once by ``texgen.diffusion.tiny.make_tiny`` and kept under the repo's gitignored
    ``.tiny-models/``, keyed by a hash of the tiny config, so a config change makes a new one
    (and removes the older ones).
    """
    pytest.importorskip("diffusers")
    from texgen.diffusion.tiny import config_hash, make_tiny

    root = REPO / ".tiny-models"

    def get(arch: str, inpaint: bool = False) -> Path:
        kind = f"{arch}{'-inpaint' if inpaint else ''}"
        path = root / f"{kind}-{config_hash(arch, inpaint=inpaint)}"
        if not (path / "model_index.json").is_file():
            for stale in root.glob(f"{kind}-*"):
                if stale.name.rsplit("-", 1)[0] == kind:
                    shutil.rmtree(stale, ignore_errors=True)
            partial = root / f".{path.name}.{os.getpid()}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            make_tiny(partial, arch, inpaint=inpaint)
            try:
                partial.rename(path)
            except OSError:  # another test process finished it first
                shutil.rmtree(partial, ignore_errors=True)
        return path

    return get
