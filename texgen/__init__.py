"""texgen: texture 3D meshes from text prompts, into the mesh's own UV map.

Heavy modules (torch, pyrender, diffusers) are imported lazily, so ``texgen.protocol`` and
``texgen.client`` import with numpy, pyzmq and msgpack alone.
"""

from __future__ import annotations

from ._lazy import lazy_attributes

__version__ = "0.1.0"

_LAZY = {
    "load_mesh": "texgen.mesh",
    "Mesh": "texgen.mesh",
    "Camera": "texgen.camera",
    "texture_mesh": "texgen.pipeline",
    "inpaint_seams": "texgen.seams_repair",
    "TextureSettings": "texgen.settings",
    "LoadOptions": "texgen.settings",
}


__getattr__ = lazy_attributes(__name__, _LAZY)
__all__ = sorted(_LAZY)
