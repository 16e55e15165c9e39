"""texgen for Blender: texture meshes from text prompts into their own UV maps, painted by a
texgen server (``texgen serve``) so that torch never runs inside Blender.

Once enabled, the synchronous scripting API is importable as ``texgen_addon`` (see
``examples/texture_selected.py``): ``texture_objects``, ``inpaint_seams``, ``test_connection``.
"""

from __future__ import annotations

import sys

from . import blender
from .blender import api
from .blender.api import inpaint_seams, test_connection, texture_objects
from .blender.runner import TexgenAddonError

API_MODULE = "texgen_addon"
__all__ = ["register", "unregister", "texture_objects", "inpaint_seams", "test_connection", "TexgenAddonError"]


def register() -> None:
    blender.register()
    sys.modules[API_MODULE] = api


def unregister() -> None:
    if sys.modules.get(API_MODULE) is api:
        del sys.modules[API_MODULE]
    blender.unregister()
