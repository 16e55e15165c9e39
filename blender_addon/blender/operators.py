"""Operators: Test Connection, Texture Selected, Inpaint Seams, Cancel and Random Seed.

Long work never blocks the UI: a job operator starts a :class:`runner.Run` and returns; a modal
timer then calls :meth:`JobSession.on_timer`, which drains the worker's events on the main thread.
In background mode (``blender -b``) there is no event loop, so the same session is ticked in a loop.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Callable, Optional

import bpy
from bpy.props import BoolProperty

from ..core.request import ServerConfig
from ..core.worker import Remote
from . import props, runner
from .mesh_io import active_uv_name

TIMER_S = 0.1


def _server(context: bpy.types.Context) -> ServerConfig:
    addon = context.preferences.addons.get(props.ADDON_PACKAGE)
    return addon.preferences.as_config() if addon is not None else ServerConfig()


def _interactive(context: bpy.types.Context) -> bool:
    return context.window is not None and not bpy.app.background


def _redraw(context: bpy.types.Context) -> None:
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "IMAGE_EDITOR"):
                area.tag_redraw()


class JobSession:
    """What a job operator does between starting its run and reporting the outcome.

    Kept apart from the operator so that the modal timer, the background loop and the tests all
    drive exactly the same steps.
    """

    def __init__(self, context: bpy.types.Context, run: runner.Run) -> None:
        self.run = run
        self.window_manager = context.window_manager
        self.window_manager.progress_begin(0, 100)

    def on_timer(self, context: bpy.types.Context) -> bool:
        """One timer step; True when every job is finished and applied."""
        done = self.run.tick()
        self.window_manager.progress_update(int(self.run.fraction * 100))
        if context.workspace is not None:
            context.workspace.status_text_set(None if done else self.run.status)
        _redraw(context)
        return done

    def on_escape(self) -> None:
        self.run.cancel()

    def abandon(self, context: bpy.types.Context) -> None:
        """Blender ends the operator without a last timer step: cancel, and clear the progress display."""
        self.run.abandon()
        self.window_manager.progress_end()
        if context.workspace is not None:
            context.workspace.status_text_set(None)

    def finish(self, context: bpy.types.Context, report: Callable[[set, str], None]) -> set:
        """Close the run, clear the progress display and report each job's outcome."""
        self.run.close()
        self.window_manager.progress_end()
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        for level, text in self.run.reports:
            report({level}, text)
        _redraw(context)
        return {"FINISHED"} if self.run.images else {"CANCELLED"}


def start_session(context: bpy.types.Context, plans_for: Callable[[], list[runner.Plan]],
                  connect: Optional[Callable[[ServerConfig], Remote]] = None) -> JobSession:
    """Check the server settings, plan the jobs and start them (``connect`` defaults to texgen's client)."""
    settings = context.scene.texgen
    config = _server(context)
    runner.check_server(config)
    placement = runner.Placement(settings.image_storage, settings.keep_old_materials,
                                 settings.material_mode)
    return JobSession(context, runner.start(plans_for(), config, placement, connect))


def plan_selected(context: bpy.types.Context, create_uvs: bool = False) -> list[runner.Plan]:
    """Texture jobs for the selected objects, from the scene's settings."""
    settings = context.scene.texgen
    create = create_uvs or settings.missing_uvs == "SMART_PROJECT"
    return runner.plan_texture(context, context.selected_objects, settings.as_options(), space=settings.space,
                               together=settings.together, create_uvs=create,
                               start_from_image=settings.start_from_image)


def plan_active(context: bpy.types.Context) -> list[runner.Plan]:
    """A seam-inpainting job for the active object, from the scene's settings."""
    settings = context.scene.texgen
    return [runner.plan_inpaint(context, context.active_object, settings.as_seam_options(), space=settings.space)]


class _JobOperator:
    """Shared body of the job operators; subclasses say what to plan."""

    _session: Optional[JobSession] = None
    _timer: Optional[bpy.types.Timer] = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return not runner.BOARD.active()

    def plans(self, context: bpy.types.Context) -> list[runner.Plan]:
        raise NotImplementedError

    def execute(self, context: bpy.types.Context) -> set:
        try:
            self._session = start_session(context, lambda: self.plans(context))
        except runner.TexgenAddonError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if not _interactive(context):
            while not self._session.on_timer(context):
                time.sleep(TIMER_S / 2)
            return self._session.finish(context, self.report)
        self._timer = context.window_manager.event_timer_add(TIMER_S, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set:
        if event.type == "ESC" and event.value == "PRESS":
            self._session.on_escape()
            return {"RUNNING_MODAL"}
        if event.type == "TIMER" and event.timer == self._timer and self._session.on_timer(context):
            context.window_manager.event_timer_remove(self._timer)
            return self._session.finish(context, self.report)
        return {"PASS_THROUGH"}

    def cancel(self, context: bpy.types.Context) -> None:
        context.window_manager.event_timer_remove(self._timer)
        self._session.abandon(context)


class TEXGEN_OT_texture_selected(_JobOperator, bpy.types.Operator):
    """Paint the selected meshes from the prompt into their own UV maps (Esc cancels)"""

    bl_idname = "texgen.texture_selected"
    bl_label = "Texture Selected"

    create_uvs: BoolProperty(name="Create missing UV maps", default=False, options={"HIDDEN", "SKIP_SAVE"})

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set:
        missing = [o.name for o in context.selected_objects if o.type == "MESH" and active_uv_name(o) is None]
        if missing and context.scene.texgen.missing_uvs == "ASK" and not self.create_uvs:
            self.create_uvs = True  # only used if the person confirms
            return context.window_manager.invoke_confirm(
                self, event, title="Create UV maps?", confirm_text="Unwrap and Texture",
                message=f"{', '.join(missing)} {'has' if len(missing) == 1 else 'have'} no UV map. "
                        "Create one with Smart UV Project?")
        return self.execute(context)

    def plans(self, context: bpy.types.Context) -> list[runner.Plan]:
        return plan_selected(context, self.create_uvs)


class TEXGEN_OT_inpaint_seams(_JobOperator, bpy.types.Operator):
    """Repaint the band along the UV seams of the active object's texture, in place (undo restores it)"""

    bl_idname = "texgen.inpaint_seams"
    bl_label = "Inpaint Seams"

    def plans(self, context: bpy.types.Context) -> list[runner.Plan]:
        return plan_active(context)


class TEXGEN_OT_cancel(bpy.types.Operator):
    """Cancel the running texgen jobs"""

    bl_idname = "texgen.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return bool(runner.BOARD.active())

    def execute(self, context: bpy.types.Context) -> set:
        for job in runner.BOARD.active():
            runner.BOARD.cancel(job.id)
        return {"FINISHED"}


class TEXGEN_OT_test_connection(bpy.types.Operator):
    """Say hello to the texgen server and show its version, device and models"""

    bl_idname = "texgen.test_connection"
    bl_label = "Test Connection"

    _thread: Optional[threading.Thread] = None
    _timer: Optional[bpy.types.Timer] = None

    def execute(self, context: bpy.types.Context) -> set:
        try:
            config = _server(context)
            runner.check_server(config)
            remote = runner.load_remote()
        except runner.TexgenAddonError as exc:
            return self._show(context, "error", str(exc), [])
        outcome: list = []
        self._thread = threading.Thread(target=lambda: outcome.append(remote.probe(config)), daemon=True)
        self._thread.start()
        self._outcome = outcome
        if not _interactive(context):
            self._thread.join()
            return self._done(context)
        context.window_manager.texgen.connection = f"connecting to {config.address}..."
        self._timer = context.window_manager.event_timer_add(TIMER_S, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set:
        if event.type == "TIMER" and event.timer == self._timer and not self._thread.is_alive():
            context.window_manager.event_timer_remove(self._timer)
            return self._done(context)
        return {"PASS_THROUGH"}

    def _done(self, context: bpy.types.Context) -> set:
        probe = self._outcome[0]
        return self._show(context, probe.status, probe.message, probe.models)

    def _show(self, context: bpy.types.Context, status: str, message: str, models: list[str]) -> set:
        runtime = context.window_manager.texgen
        runtime.connection, runtime.connection_ok = message, status == "ok"
        runtime.models.clear()
        for name in models:
            runtime.models.add().name = name
        self.report({"INFO" if status == "ok" else "ERROR"}, message)
        _redraw(context)
        return {"FINISHED"} if status == "ok" else {"CANCELLED"}


class TEXGEN_OT_random_seed(bpy.types.Operator):
    """Pick a random seed"""

    bl_idname = "texgen.random_seed"
    bl_label = "Random Seed"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set:
        context.scene.texgen.seed = random.randrange(2**31 - 1)
        return {"FINISHED"}


CLASSES = (TEXGEN_OT_texture_selected, TEXGEN_OT_inpaint_seams, TEXGEN_OT_cancel, TEXGEN_OT_test_connection,
           TEXGEN_OT_random_seed)
