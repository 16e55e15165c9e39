"""bpy glue: registration of properties, operators, the panel and the undo and file-load handlers."""

from __future__ import annotations

import bpy

from . import materials, operators, panel, props, runner


def register() -> None:
    props.register()
    for cls in operators.CLASSES + panel.CLASSES:
        bpy.utils.register_class(cls)
    materials.register()
    runner.register()


def unregister() -> None:
    runner.unregister()
    materials.unregister()
    for cls in reversed(operators.CLASSES + panel.CLASSES):
        bpy.utils.unregister_class(cls)
    props.unregister()
