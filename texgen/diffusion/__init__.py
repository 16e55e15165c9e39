"""Depth-conditioned diffusion: the generator protocol and its diffusers backends.

The paint loop calls ``load_generator(spec)`` once and then ``generate`` / ``inpaint`` on
batches of views (see base.py). Heavy modules load lazily: importing this package does
not import diffusers.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ViewBatch": "texgen.diffusion.base",
    "SamplerSettings": "texgen.diffusion.base",
    "Generator": "texgen.diffusion.base",
    "LoadOptions": "texgen.diffusion.loading",
    "load_generator": "texgen.diffusion.loading",
    "release": "texgen.diffusion.loading",
    "release_all": "texgen.diffusion.loading",
    "PRESETS": "texgen.diffusion.loading",
    "ARCHITECTURES": "texgen.diffusion.registry",
    "make_tiny": "texgen.diffusion.tiny",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'texgen.diffusion' has no attribute {name!r}")


__all__ = sorted(_LAZY)
