"""Properties: server settings in the add-on's preferences (never saved in a .blend, since they
hold a secret key), generation settings on the scene, and runtime state on the window manager.

Each group turns itself into the core's typed objects once (``as_config`` / ``as_options``).
"""

from __future__ import annotations

import math

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty,
                       PointerProperty, StringProperty)

from ..core.request import DEFAULT_ADDRESS, SeamOptions, ServerConfig, TextureOptions

ADDON_PACKAGE = __package__.rpartition(".")[0]


class TexgenPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    address: StringProperty(name="Server", default=DEFAULT_ADDRESS,
                            description="Address of the texgen server (texgen serve), tcp://HOST:PORT")
    server_key: StringProperty(name="Server key", description="The server's CURVE public key (Z85, 40 characters); "
                               "needed for any server that is not on this machine")
    client_public_key: StringProperty(name="Client public key", description="This client's CURVE public key, which "
                                      "the server must allow (texgen keys generate)")
    client_secret_key: StringProperty(name="Client secret key", subtype="PASSWORD",
                                      description="This client's CURVE secret key; kept in the preferences only")
    connect_timeout_s: FloatProperty(name="Connect timeout", default=5.0, min=0.5, max=120.0, unit="TIME_ABSOLUTE",
                                     description="Seconds to wait for the server's hello before giving up")
    timeout_s: FloatProperty(name="Silence timeout", default=60.0, min=5.0, max=3600.0, unit="TIME_ABSOLUTE",
                             description="A job fails when the server sends nothing (not even a heartbeat) this long")

    def as_config(self) -> ServerConfig:
        return ServerConfig(self.address.strip(), self.server_key.strip(), self.client_public_key.strip(),
                            self.client_secret_key.strip(), self.connect_timeout_s, self.timeout_s)

    def draw(self, context: bpy.types.Context) -> None:
        draw_server(self.layout, self)


def draw_server(layout: bpy.types.UILayout, prefs: TexgenPreferences) -> None:
    layout.prop(prefs, "address")
    keys = layout.column(heading="CURVE (remote servers)", align=True)
    keys.prop(prefs, "server_key")
    keys.prop(prefs, "client_public_key")
    keys.prop(prefs, "client_secret_key")
    row = layout.row(align=True)
    row.prop(prefs, "connect_timeout_s")
    row.prop(prefs, "timeout_s")


class TexgenSettings(bpy.types.PropertyGroup):
    """Generation and placement settings of the scene (``Scene.texgen``)."""

    prompt: StringProperty(name="Prompt", description="What to paint, e.g. 'weathered oak with carved runes'")
    negative_prompt: StringProperty(name="Negative", description="What to avoid")
    model: StringProperty(name="Model", description="Model the server should use; empty for the server's default")
    seed: IntProperty(name="Seed", default=0, min=0, max=2**31 - 1)
    views: IntProperty(name="Views", default=8, min=0, max=64, description="Views to paint from; 0 chooses "
                       "them automatically (next best view)")
    view_size: IntProperty(name="View size", default=768, min=64, max=4096, step=8, subtype="PIXEL")
    texture_size: IntProperty(name="Texture size", default=1024, min=16, max=8192, subtype="PIXEL")
    steps: IntProperty(name="Steps", default=25, min=1, max=200)
    guidance: FloatProperty(name="Guidance", default=7.5, min=0.0, max=50.0)
    start_from_image: BoolProperty(name="Start from current image", default=False,
                                   description="Repaint the image the material shows on Base Color instead of "
                                   "painting from nothing; what no view sees keeps it")
    init_strength: FloatProperty(name="Strength", default=0.6, min=0.0, max=1.0, subtype="FACTOR",
                                 description="How much the views repaint the current image: 0 keeps it, "
                                 "1 repaints it")
    space: EnumProperty(name="Space", default="WORLD", items=[
        ("WORLD", "World", "Send the mesh with its world transform (up and front as in the scene)"),
        ("LOCAL", "Local", "Send the mesh in its own coordinates")])
    together: BoolProperty(name="Together as one scene", default=False,
                           description="Paint all selected objects in one job, so views see them together; "
                           "each still gets its own image")
    missing_uvs: EnumProperty(name="Without UVs", default="ASK", items=[
        ("ASK", "Ask", "Ask before creating a UV map"),
        ("SMART_PROJECT", "Smart UV Project", "Create a UV map with Smart UV Project without asking")])
    image_storage: EnumProperty(name="Image", default="PACK", items=[
        ("PACK", "Pack into .blend", "Pack the painted image into the .blend file"),
        ("SAVE", "Save next to .blend", "Save the image as PNG in a textures folder next to the .blend file")])
    material_mode: EnumProperty(name="Material", default="EXISTING", items=[
        ("EXISTING", "Paint each material", "Each slot gets a copy of its material whose Principled BSDF base "
         "colour reads the painted image; roughness, normal map and the rest stay. A slot without one gets a "
         "new material"),
        ("NEW", "New material", "One new material, the painted image as its base colour, takes every slot")])
    keep_old_materials: BoolProperty(name="Keep old materials", default=True,
                                     description="When texgen's materials take an object's slots, keep the "
                                     "materials it replaces in the file (fake user). Off allows them to be lost")

    seam_method: EnumProperty(name="Method", default="classical", items=[
        ("classical", "Classical", "Blend colours across the seams; no model, quick"),
        ("diffusion", "Diffusion", "Repaint the band with the model from views centred on the worst seams")])
    seam_band: IntProperty(name="Band", default=8, min=1, max=256, subtype="PIXEL",
                           description="Width of the repaired band on each side of a seam, in texels")
    seam_threshold: FloatProperty(name="Threshold", default=2.3, min=0.0, max=100.0,
                                  description="Repair seams whose colour jump (Delta E) is above this; "
                                  "0 repairs every seam")
    seam_hard_edge: FloatProperty(name="Hard Edges", default=math.radians(30.0), min=math.radians(1.0), max=math.pi,
                                  subtype="ANGLE", description="Leave seams alone where the surface turns by more "
                                  "than this angle, as colours may change there by design (an eye's rim, a box's "
                                  "corner); 180° repairs every seam")

    def as_options(self) -> TextureOptions:
        return TextureOptions(self.prompt, self.negative_prompt, self.model.strip(), self.seed, self.views,
                              self.view_size, self.texture_size, self.steps, self.guidance, self.init_strength)

    def as_seam_options(self) -> SeamOptions:
        hard_edge_deg = round(math.degrees(self.seam_hard_edge), 3)  # float32 pi reads as 180.0000025 degrees
        return SeamOptions(self.seam_method, self.seam_band, self.seam_threshold, hard_edge_deg, self.prompt,
                           self.negative_prompt, self.model.strip(), self.seed, self.views, self.view_size, self.steps,
                           self.guidance)


class TexgenModelName(bpy.types.PropertyGroup):
    name: StringProperty()


class TexgenRuntime(bpy.types.PropertyGroup):
    """What the last connection test said (``WindowManager.texgen``, never saved)."""

    connection: StringProperty(name="Connection", default="not tested")
    connection_ok: BoolProperty(default=False)
    models: CollectionProperty(type=TexgenModelName)


CLASSES = (TexgenPreferences, TexgenSettings, TexgenModelName, TexgenRuntime)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.texgen = PointerProperty(type=TexgenSettings)
    bpy.types.WindowManager.texgen = PointerProperty(type=TexgenRuntime)


def unregister() -> None:
    del bpy.types.WindowManager.texgen
    del bpy.types.Scene.texgen
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)


def preferences(context: bpy.types.Context) -> TexgenPreferences:
    return context.preferences.addons[ADDON_PACKAGE].preferences
