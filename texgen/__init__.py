"""texgen: texture 3D meshes from text prompts, into the mesh's own UV map.

Heavy modules (torch, pyrender, diffusers) are imported lazily, so ``texgen.protocol`` and
``texgen.client`` import with numpy, pyzmq and msgpack alone.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_mesh": "texgen.mesh",
    "Mesh": "texgen.mesh",
    "Camera": "texgen.camera",
    "texture_mesh": "texgen.pipeline",
    "inpaint_seams": "texgen.seams_repair",
    "TextureSettings": "texgen.settings",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'texgen' has no attribute {name!r}")


__all__ = sorted(_LAZY)
