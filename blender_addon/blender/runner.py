"""One press of "Texture Selected" or "Inpaint Seams": plan (scene -> requests), run (worker
thread + job board), and apply each result on the main thread as it arrives.

:meth:`Run.tick` is the only thing that moves a run forward. The modal operator calls it from
its timer; the synchronous scripting API calls it in a loop (``blender -b`` has no event loop).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

import bpy
import numpy as np

from ..core.jobs import Job, JobBoard, JobState
from ..core.meshdata import AtlasLayout, combine, join_atlas, split_atlas
from ..core.request import JobRequest, RequestError, SeamOptions, ServerConfig, TextureOptions
from ..core.worker import Remote, Ticket, Worker, describe
from . import materials, mesh_io

log = logging.getLogger(__name__)
BOARD = JobBoard()            # every job of this Blender session, keyed by job id
PREVIEW_IMAGE = "texgen preview"


class TexgenAddonError(RuntimeError):
    """A run could not start or a job failed; the message is meant for a person."""


@dataclass
class Target:
    """An object a job paints: its UV map, and whether this run created that map."""

    name: str
    uv_name: str
    created_uv: bool = False


@dataclass
class Plan:
    """A job to run and what its result goes to."""

    request: JobRequest
    targets: list[Target]
    layout: Optional[AtlasLayout] = None
    image_name: str = ""      # inpaint_seams: the image updated in place


@dataclass
class Placement:
    """How results are stored: image "PACK" or "SAVE", whether replaced materials are kept, and
    whether each slot's material is copied with the image as its base colour ("EXISTING") or one new
    material takes every slot ("NEW"; see :func:`materials.apply_texture`)."""

    storage: str = "PACK"
    keep_old_materials: bool = True
    material_mode: str = "EXISTING"

    def __post_init__(self) -> None:
        if self.storage not in ("PACK", "SAVE") or self.material_mode not in materials.MATERIAL_MODES:
            raise TexgenAddonError(f"image storage must be PACK or SAVE and the material mode one of "
                                   f"{', '.join(materials.MATERIAL_MODES)}; got {self.storage!r}, "
                                   f"{self.material_mode!r}")


def check_server(config: ServerConfig) -> None:
    """Raise TexgenAddonError when ``config`` is unusable or online access forbids it."""
    try:
        config.validate()
    except RequestError as exc:
        raise TexgenAddonError(str(exc)) from None
    check_online(config)


def check_online(config: ServerConfig) -> None:
    """Refuse a non-loopback server while Blender's "Allow Online Access" is off, and say why."""
    if config.is_loopback or bpy.app.online_access:
        return
    how = ("Blender was started with --offline-mode" if bpy.app.online_access_override
           else "turn it on in Preferences > System > Network")
    raise TexgenAddonError(f"Blender's \"Allow Online Access\" is off, so texgen will not connect to "
                           f"{config.address}: {how}. A server on this machine (tcp://127.0.0.1:PORT) "
                           "needs no online access.")


def load_remote() -> Any:
    """The core's client bridge; it imports pyzmq and msgpack, so only when a job really starts."""
    try:
        from ..core import remote
    except ImportError as exc:
        raise TexgenAddonError(f"texgen's network modules could not be loaded ({exc}): install the add-on zip "
                               "built for this platform (blender_addon/build.py), which bundles pyzmq and "
                               "msgpack") from None
    return remote


def start(plans: list[Plan], config: ServerConfig, placement: Placement,
          connect: Optional[Callable[[ServerConfig], Remote]] = None) -> "Run":
    """Start a :class:`Run`; if it cannot start, remove the UV maps its planning created."""
    try:
        return Run(plans, config, placement, connect)
    except Exception:
        for plan in plans:
            _remove_created_uvs(plan.targets)
        raise


def plan_texture(context: bpy.types.Context, objects: Iterable[bpy.types.Object], options: TextureOptions, *,
                 space: str = "WORLD", together: bool = False, create_uvs: bool = False,
                 start_from_image: bool = False) -> list[Plan]:
    """Turn objects into texture jobs. Objects without a UV map get one by Smart UV Project when
    ``create_uvs``; otherwise they are refused. ``start_from_image``: each job starts from the image
    its object's material shows on Base Color (:func:`base_colour_image`; objects sent together, from
    their images side by side in the atlas), which the views repaint with ``options.init_strength``.
    Nothing is left changed when planning fails."""
    try:
        options.validate()
    except RequestError as exc:
        raise TexgenAddonError(str(exc)) from None
    meshes = [obj for obj in objects if obj.type == "MESH"]
    if not meshes:
        raise TexgenAddonError("Select one or more mesh objects to texture")
    missing = [obj for obj in meshes if mesh_io.active_uv_name(obj) is None]
    starts: list[Optional[np.ndarray]] = [None] * len(meshes)
    if start_from_image:
        if missing:
            raise TexgenAddonError(f"{', '.join(o.name for o in missing)}: no UV map that an image to start from "
                                   "could be on; turn off Start from current image, or unwrap it")
        starts = [materials.read_texture(base_colour_image(obj)) for obj in meshes]
    if missing and not create_uvs:
        raise TexgenAddonError(f"{', '.join(o.name for o in missing)}: no UV map. Unwrap it, or let texgen "
                               "create one (Without UVs: Smart UV Project)")
    targets: list[Target] = []
    try:
        for obj in meshes:
            if obj.mode == "EDIT":
                obj.update_from_editmode()
            created = obj in missing
            uv_name = mesh_io.smart_uv_project(context, obj) if created else mesh_io.active_uv_name(obj)
            targets.append(Target(obj.name, uv_name, created))
        depsgraph = context.evaluated_depsgraph_get()
        arrays = [mesh_io.export_object(obj, depsgraph, space) for obj in meshes]
    except mesh_io.ExportError as exc:
        _remove_created_uvs(targets)
        raise TexgenAddonError(str(exc)) from None
    if together and len(arrays) > 1:
        try:
            merged, layout = combine(arrays)
        except ValueError as exc:
            _remove_created_uvs(targets)
            raise TexgenAddonError(str(exc)) from None
        scene_options = options.replace(texture_size=options.texture_size * layout.tiles)
        start = join_atlas(starts, layout, options.texture_size) if start_from_image else None
        request = JobRequest("texture", merged, scene_options, tuple(t.name for t in targets), start)
        return [Plan(request, targets, layout)]
    return [Plan(JobRequest("texture", mesh, options, (target.name,), start), [target])
            for mesh, target, start in zip(arrays, targets, starts, strict=True)]


def base_colour_image(obj: bpy.types.Object) -> bpy.types.Image:
    """The image ``obj``'s texgen material (else its active material) reads as base colour; raises
    TexgenAddonError naming the object when there is none with pixels."""
    image = materials.material_image(materials.texgen_material(obj) or obj.active_material)
    if image is None or not image.has_data:
        raise TexgenAddonError(f"{obj.name}: its material has no image on Base Color: run Texture Selected first")
    return image


def plan_inpaint(context: bpy.types.Context, obj: Optional[bpy.types.Object], options: SeamOptions, *,
                 space: str = "WORLD") -> Plan:
    """A seam-inpainting job for ``obj``'s image (its texgen material's, else its active material's)."""
    try:
        options.validate()
    except RequestError as exc:
        raise TexgenAddonError(str(exc)) from None
    if obj is None or obj.type != "MESH":
        raise TexgenAddonError("Make a mesh object active to inpaint its seams")
    image = base_colour_image(obj)
    if image.size[0] != image.size[1]:
        raise TexgenAddonError(f"{image.name} is {image.size[0]}x{image.size[1]}: Inpaint Seams works on square "
                               "textures (as Texture Selected makes them)")
    texture = materials.read_texture(image)
    if obj.mode == "EDIT":
        obj.update_from_editmode()
    try:
        mesh = mesh_io.export_object(obj, context.evaluated_depsgraph_get(), space, normals=True)
    except mesh_io.ExportError as exc:
        raise TexgenAddonError(str(exc)) from None
    request = JobRequest("inpaint_seams", mesh, options, (obj.name,), texture)
    return Plan(request, [Target(obj.name, mesh_io.active_uv_name(obj))], image_name=image.name)


class Run:
    """Jobs of one operator call, their worker thread, and how finished jobs reach the scene."""

    def __init__(self, plans: list[Plan], config: ServerConfig, placement: Placement,
                 connect: Optional[Callable[[ServerConfig], Remote]] = None, board: JobBoard = BOARD) -> None:
        check_server(config)
        if placement.storage == "SAVE" and not bpy.data.filepath:
            raise TexgenAddonError("Save the .blend file first, so the image can be saved next to it "
                                   "(or choose Image: Pack into .blend)")
        connect = connect or load_remote().connect
        self.board, self.placement = board, placement
        self.plans = {board.add(plan.request).id: plan for plan in plans}
        self.reports: list[tuple[str, str]] = []
        self.images: list[str] = []
        self._handled: set[str] = set()
        self._preview_serial: dict[str, int] = {}
        self._preview_created = False
        self.worker = Worker(lambda: connect(config), board.events,
                             [Ticket(job.id, job.request, job.cancel_event) for job in self.jobs])

    @property
    def jobs(self) -> list[Job]:
        return [self.board.jobs[job_id] for job_id in self.plans]

    @property
    def done(self) -> bool:
        return len(self._handled) == len(self.plans)

    @property
    def fraction(self) -> float:
        return sum(job.fraction for job in self.jobs) / max(1, len(self.plans))

    @property
    def status(self) -> str:
        running = [job for job in self.jobs if not job.finished]
        if not running:
            return "texgen: finished"
        job = running[0]
        return f"texgen {len(self._handled) + 1}/{len(self.plans)} {job.label}: {job.message} (Esc cancels)"

    def tick(self) -> bool:
        """Apply what the worker reported; apply finished jobs' results. True once all are handled."""
        self.board.drain()
        for job in self.jobs:
            if job.preview is not None and self._preview_serial.get(job.id) != job.preview_serial:
                self._preview_serial[job.id] = job.preview_serial
                self._show_preview(job.preview)
            if job.finished and job.id not in self._handled:
                self._handled.add(job.id)
                self._finish(job)
        return self.done

    def cancel(self) -> None:
        for job_id in self.plans:
            self.board.cancel(job_id)

    def close(self) -> None:
        """Stop the worker (cancelling what is left) and forget the jobs; drop the preview on failure."""
        if not self.done:
            self.cancel()
        self.worker.join()
        self.tick()
        for job in self.jobs:
            if job.id not in self._handled:  # the worker did not confirm in time
                self._handled.add(job.id)
                _remove_created_uvs(self.plans[job.id].targets)
                self.reports.append(("WARNING", f"{job.label}: abandoned ({job.message})"))
        for job_id in self.plans:
            self.board.forget(job_id)
        if self._preview_created and not self.images and (image := bpy.data.images.get(PREVIEW_IMAGE)):
            bpy.data.images.remove(image)

    def abandon(self) -> None:
        """Cancel and forget the jobs without waiting (Blender is ending the operator, e.g. to load
        another file); the worker thread ends by itself once the server confirms."""
        self.cancel()
        for job_id in self.plans:
            self.board.forget(job_id)

    def wait(self, poll_s: float = 0.05, timeout_s: Optional[float] = None) -> None:
        """Tick until every job is handled (the synchronous API's loop)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self.tick():
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                deadline = None
                self.reports.append(("ERROR", f"timed out after {timeout_s:g} s; cancelled"))
            time.sleep(poll_s)

    def _finish(self, job: Job) -> None:
        plan = self.plans[job.id]
        if job.state == JobState.DONE:
            transaction = materials.Transaction()
            try:
                self._apply(plan, job.texture, transaction)
            except (RuntimeError, ValueError, OSError) as exc:
                transaction.rollback()
                _remove_created_uvs(plan.targets)
                self.reports.append(("ERROR", f"{job.label}: the result could not be applied: {describe(exc)}"))
                return
            self.reports += [("INFO", f"{job.label}: {note}") for note in job.notes]
            self.reports.append(("INFO", f"{job.label}: done"))
            _undo_push(f"texgen: {job.request.kind.replace('_', ' ')}")
            return
        _remove_created_uvs(plan.targets)
        level = "WARNING" if job.state == JobState.CANCELLED else "ERROR"
        self.reports.append((level, f"{job.label}: {job.message}"))

    def _apply(self, plan: Plan, texture: Optional[np.ndarray], transaction: materials.Transaction) -> None:
        if texture is None:
            raise ValueError("the server sent no texture")
        if plan.image_name:
            image = bpy.data.images.get(plan.image_name)
            if image is None:
                raise ValueError(f"the image {plan.image_name!r} was deleted while the job ran")
            materials.HISTORY.write(image, texture, transaction)
            if image.packed_file is not None:
                image.pack()
            self.images.append(image.name)
            return
        textures = split_atlas(texture, plan.layout) if plan.layout else {plan.targets[0].name: texture}
        for target in plan.targets:
            obj = bpy.data.objects.get(target.name)
            if obj is None:
                raise ValueError(f"the object {target.name!r} was deleted while the job ran")
            image = materials.apply_texture(obj, textures[target.name], target.uv_name,
                                            storage=self.placement.storage,
                                            keep_old_materials=self.placement.keep_old_materials,
                                            transaction=transaction, material_mode=self.placement.material_mode)
            self.images.append(image.name)

    def _show_preview(self, preview: np.ndarray) -> None:
        image = bpy.data.images.get(PREVIEW_IMAGE)
        if image is None:
            image = bpy.data.images.new(PREVIEW_IMAGE, preview.shape[1], preview.shape[0], alpha=False)
            self._preview_created = True
        materials.set_pixels(image, preview)
        image.preview_ensure().reload()  # the panel shows it as an icon; image editors show the image


@bpy.app.handlers.persistent
def _cancel_all(*_args: object) -> None:
    """Cancel every running job (another file is being loaded, or the add-on is going away)."""
    for job in BOARD.active():
        BOARD.cancel(job.id)


def register() -> None:
    bpy.app.handlers.load_pre.append(_cancel_all)


def unregister() -> None:
    _cancel_all()
    while _cancel_all in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_cancel_all)


def _remove_created_uvs(targets: list[Target]) -> None:
    for target in targets:
        obj = bpy.data.objects.get(target.name)
        if target.created_uv and obj is not None and (layer := obj.data.uv_layers.get(target.uv_name)):
            obj.data.uv_layers.remove(layer)
        target.created_uv = False


def _undo_push(message: str) -> None:
    try:
        bpy.ops.ed.undo_push(message=message)
    except RuntimeError as exc:  # no undo stack in this context (e.g. some scripted runs)
        log.debug("undo push skipped: %s", exc)
