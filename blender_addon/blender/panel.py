"""The sidebar panel in the 3D viewport (N panel, "texgen" tab)."""

from __future__ import annotations

import bpy

from . import props, runner


class _Panel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "texgen"


class TEXGEN_PT_main(_Panel, bpy.types.Panel):
    bl_label = "texgen"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings, runtime = context.scene.texgen, context.window_manager.texgen
        addon = context.preferences.addons.get(props.ADDON_PACKAGE)
        if addon is not None:
            layout.prop(addon.preferences, "address")
        row = layout.row()
        row.operator("texgen.test_connection", icon="LINKED")
        layout.label(text=runtime.connection, icon="CHECKMARK" if runtime.connection_ok else "INFO")

        column = layout.column()
        column.prop(settings, "prompt")
        column.prop(settings, "negative_prompt")
        if len(runtime.models):
            column.prop_search(settings, "model", runtime, "models")
        else:
            column.prop(settings, "model")
        row = column.row(align=True)
        row.prop(settings, "seed")
        row.operator("texgen.random_seed", text="", icon="FILE_REFRESH")
        column.prop(settings, "views")
        column.prop(settings, "view_size")
        column.prop(settings, "texture_size")
        column.prop(settings, "steps")
        column.prop(settings, "guidance")
        row = column.row(align=True)
        row.prop(settings, "start_from_image")
        strength = row.row(align=True)
        strength.active = settings.start_from_image
        strength.prop(settings, "init_strength")

        layout.operator("texgen.texture_selected", icon="BRUSH_DATA")
        layout.operator("texgen.inpaint_seams", icon="MOD_UVPROJECT")
        for job in runner.BOARD.active():
            layout.progress(factor=job.fraction, type="BAR", text=f"{job.label}: {job.message}")
        if runner.BOARD.active():
            layout.operator("texgen.cancel", icon="CANCEL")
        preview = bpy.data.images.get(runner.PREVIEW_IMAGE)
        if preview is not None and preview.preview is not None:
            layout.template_icon(icon_value=preview.preview.icon_id, scale=6)


class TEXGEN_PT_options(_Panel, bpy.types.Panel):
    bl_label = "Placement"
    bl_parent_id = "TEXGEN_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        settings = context.scene.texgen
        column = self.layout.column()
        column.prop(settings, "space")
        column.prop(settings, "together")
        column.prop(settings, "missing_uvs")
        column.prop(settings, "image_storage")
        column.prop(settings, "material_mode")
        column.prop(settings, "keep_old_materials")


class TEXGEN_PT_seams(_Panel, bpy.types.Panel):
    bl_label = "Inpaint Seams"
    bl_parent_id = "TEXGEN_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        settings = context.scene.texgen
        column = self.layout.column()
        column.prop(settings, "seam_method")
        column.prop(settings, "seam_band")
        column.prop(settings, "seam_threshold")
        column.prop(settings, "seam_hard_edge")


class TEXGEN_PT_server(_Panel, bpy.types.Panel):
    bl_label = "Server keys (CURVE)"
    bl_parent_id = "TEXGEN_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        addon = context.preferences.addons.get(props.ADDON_PACKAGE)
        if addon is None:
            self.layout.label(text="Enable texgen as an add-on to set its server keys")
            return
        props.draw_server(self.layout, addon.preferences)


CLASSES = (TEXGEN_PT_main, TEXGEN_PT_options, TEXGEN_PT_seams, TEXGEN_PT_server)
