"""Registration: the add-on enables and disables cleanly as an extension, with its properties."""

from __future__ import annotations

import sys

import bpy

from conftest import ADDON_MODULE

OPERATORS = ("texture_selected", "inpaint_seams", "cancel", "test_connection", "random_seed")
PANELS = ("TEXGEN_PT_main", "TEXGEN_PT_options", "TEXGEN_PT_seams", "TEXGEN_PT_server")


def _registered() -> dict[str, bool]:
    return {
        "scene": hasattr(bpy.types.Scene, "texgen"),
        "window_manager": hasattr(bpy.types.WindowManager, "texgen"),
        "operators": all(hasattr(bpy.types, f"TEXGEN_OT_{name}") for name in OPERATORS),
        "panels": all(hasattr(bpy.types, name) for name in PANELS),
        "api": "texgen_addon" in sys.modules,
        "preferences": ADDON_MODULE in bpy.context.preferences.addons,
    }


def test_disable_and_enable_cleanly(addon):
    from conftest import ADDON_MODULE

    assert all(_registered().values())
    undo_handlers = len(bpy.app.handlers.undo_post)
    assert bpy.ops.preferences.addon_disable(module=ADDON_MODULE) == {"FINISHED"}
    assert not any(_registered().values())
    assert len(bpy.app.handlers.undo_post) == undo_handlers - 1
    assert bpy.ops.preferences.addon_enable(module=ADDON_MODULE) == {"FINISHED"}
    assert all(_registered().values())
    assert len(bpy.app.handlers.undo_post) == undo_handlers


def test_panel_properties_exist_with_texgen_names(scene):
    settings = scene.texgen
    for name in ("prompt", "negative_prompt", "model", "seed", "views", "view_size", "texture_size", "steps",
                 "guidance", "space", "together", "missing_uvs", "image_storage", "material_mode",
                 "keep_old_materials",
                 "seam_method", "seam_band", "seam_threshold", "seam_hard_edge"):
        assert hasattr(settings, name), name
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    for name in ("address", "server_key", "client_public_key", "client_secret_key", "connect_timeout_s",
                 "timeout_s"):
        assert hasattr(prefs, name), name
    assert prefs.address == "tcp://127.0.0.1:5555"
    assert prefs.bl_rna.properties["client_secret_key"].subtype == "PASSWORD"
    options = settings.as_options()
    assert options.prompt == "red bricks" and options.views == 2 and options.texture_size == 64


class RecordingLayout:
    """Stands in for UILayout: checks that every drawn property and operator exists."""

    def __init__(self, drawn: list):
        self.drawn = drawn

    def prop(self, data, name, **_):
        assert name in data.bl_rna.properties, name
        self.drawn.append(name)

    def prop_search(self, data, name, search_data, search_name, **_):
        assert name in data.bl_rna.properties and search_name in search_data.bl_rna.properties
        self.drawn.append(name)

    def operator(self, idname, **_):
        category, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, category), name), idname
        self.drawn.append(idname)

    def row(self, **_):
        return self

    column = row

    def label(self, **_):
        pass

    progress = template_icon = label


class FakePanel:
    def __init__(self, drawn: list):
        self.layout = RecordingLayout(drawn)


def test_panels_draw_existing_properties_and_operators(scene):
    drawn: list = []
    for name in PANELS:
        panel = getattr(bpy.types, name)
        assert panel.bl_space_type == "VIEW_3D" and panel.bl_region_type == "UI"
        panel.draw(FakePanel(drawn), bpy.context)
    for expected in ("address", "prompt", "seed", "texgen.random_seed", "texgen.test_connection",
                     "texgen.texture_selected", "texgen.inpaint_seams", "together", "server_key", "seam_band"):
        assert expected in drawn, expected


def test_scripting_api_is_importable(addon):
    import texgen_addon

    for name in ("texture_objects", "inpaint_seams", "test_connection", "TexgenAddonError"):
        assert callable(getattr(texgen_addon, name)), name


def test_random_seed_changes_the_seed(scene):
    scene.texgen.seed = 0
    seeds = set()
    for _ in range(3):
        assert bpy.ops.texgen.random_seed() == {"FINISHED"}
        seeds.add(scene.texgen.seed)
    assert len(seeds) > 1
