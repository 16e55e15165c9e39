"""Depth-conditioned diffusion: the generator protocol and its diffusers backends.

The paint loop calls ``load_generator(spec)`` once and then ``generate`` / ``inpaint`` on
batches of views (see base.py). Heavy modules load lazily: importing this package does
not import diffusers.
"""

from __future__ import annotations

from .._lazy import lazy_attributes

_LAZY = {
    "ViewBatch": "texgen.diffusion.base",
    "SamplerSettings": "texgen.diffusion.base",
    "Generator": "texgen.diffusion.base",
    "LoadOptions": "texgen.settings",
    "load_generator": "texgen.diffusion.loading",
    "release": "texgen.diffusion.loading",
    "release_all": "texgen.diffusion.loading",
    "PRESETS": "texgen.diffusion.loading",
    "ARCHITECTURES": "texgen.diffusion.registry",
    "make_tiny": "texgen.diffusion.tiny",
}


__getattr__ = lazy_attributes(__name__, _LAZY)
__all__ = sorted(_LAZY)
