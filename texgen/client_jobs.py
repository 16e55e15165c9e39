"""`texgen texture --server` and `texgen inpaint-seams --server`: run a job on a texgen server.

:func:`run_remote` returns the same :class:`TextureResult` a local run returns, so
``texgen.export.write_outputs`` writes the same files. The mesh is loaded (and unwrapped when
asked) here, on the client, exactly as a local run loads it; only arrays travel.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np

from . import client as remote, protocol
from .errors import Cancelled, ConfigError, JobLost, MeshError, OutOfMemoryError, TexgenError
from .images import read_texture, starting_image
from .mesh import Mesh, load_mesh
from .progress import CancelToken, ProgressCallback, ProgressEvent
from .result import TextureResult, with_new_base_colour
from .settings import DEFAULT_MODEL

LOCAL_ONLY = ("device", "object")  # where the client loads the mesh; the server picks its device
ERRORS = {protocol.OUT_OF_MEMORY: OutOfMemoryError, protocol.INVALID_OPTIONS: ConfigError,
          protocol.INVALID_INPUT: MeshError, protocol.WORKER_DIED: JobLost, protocol.JOB_LOST: JobLost}


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The --server options shared by `texgen texture` and `texgen inpaint-seams`."""
    group = parser.add_argument_group("remote (run the job on a `texgen serve` GPU server)")
    group.add_argument("--server", metavar="ADDRESS", help="e.g. tcp://gpu-box:5555; run the job there")
    group.add_argument("--server-key", type=Path, metavar="FILE", help="the server's public key (server.key)")
    group.add_argument("--client-key", type=Path, metavar="FILE", help="this client's NAME.key_secret")
    group.add_argument("--server-timeout", type=float, default=10.0, metavar="S",
                       help="seconds to wait for each server reply (default 10)")


def wire_options(settings: Any, mesh: Mesh) -> dict[str, Any]:
    """A settings dataclass or mapping as wire options, without the client-side concerns.

    The model is left to the server's default unless another than texgen's default is named;
    the mesh was loaded (and unwrapped) here, so the server is told not to unwrap it again.
    """
    values = dataclasses.asdict(settings) if dataclasses.is_dataclass(settings) else dict(settings)
    for key in LOCAL_ONLY:
        values.pop(key, None)
    if values.get("model") == DEFAULT_MODEL:
        values.pop("model")
    if "unwrap" in values and mesh.has_uvs:
        values["unwrap"] = "auto"
    return values


def run_remote(server: str, mesh: Union[Mesh, str, Path], settings: Any, *, job: str = "texture",
               texture: Union[np.ndarray, str, Path, None] = None, server_key: Optional[Path] = None,
               client_key: Optional[Path] = None, progress: Optional[ProgressCallback] = None,
               cancel: Optional[CancelToken] = None, timeout: float = 10.0) -> TextureResult:
    """Run a ``texture`` or ``inpaint_seams`` job on the server at ``server``.

    settings : TextureSettings (or the seam settings) or a mapping of option names
    texture : for inpaint_seams, (H, W, 3) uint8 or an image path; default the mesh's own texture
    progress, cancel : as for a local run; events arrive as ProgressEvents
    Raises TexgenError subclasses with the server's message (Cancelled when cancelled).
    """
    if job not in ("texture", "inpaint_seams"):
        raise ConfigError(f"job must be texture or inpaint_seams, got {job!r}")
    if not isinstance(mesh, Mesh):
        values = settings if isinstance(settings, Mapping) else dataclasses.asdict(settings)
        mesh = load_mesh(mesh, object_name=values.get("object", ""), unwrap=values.get("unwrap", "auto"))
    options = wire_options(settings, mesh)
    try:
        with remote.Client(server, server_public_key=server_key, client_keys=client_key, timeout=timeout) as client:
            if job == "texture":
                image = None
                if start := options.get("init_texture", ""):  # read here, sent as the job's texture frame
                    image, options["init_texture"] = starting_image(mesh, start), "mesh"
                handle = client.submit_texture(mesh.positions, mesh.faces, mesh.uvs, mesh.uv_faces, options=options,
                                               name=mesh.name, texture=image)
            else:
                image = _texture(texture, mesh)
                handle = client.submit_inpaint_seams(mesh.positions, mesh.faces, mesh.uvs, mesh.uv_faces, image,
                                                     options=options, name=mesh.name, normals=mesh.normals,
                                                     normal_faces=mesh.normal_faces)
            result = _follow(handle, progress, cancel)
    except remote.JobCancelled as exc:
        raise Cancelled(str(exc)) from None
    except remote.ServerError as exc:
        raise ERRORS.get(exc.code, TexgenError)(f"the server at {server}: {exc.message}") from None
    except (remote.ClientError, remote.ProtocolError) as exc:
        raise TexgenError(str(exc)) from None
    if result.uvs is not None:  # the server unwrapped a mesh that had no UVs
        mesh = dataclasses.replace(mesh, uvs=np.array(result.uvs, np.float64),
                                   uv_faces=np.array(result.uv_faces, np.int64), unwrapped=True,
                                   notes=[*mesh.notes, "the mesh had no UVs; unwrapped on the server"])
    preview = None if result.preview is None else np.array(result.preview)
    return TextureResult(mesh=with_new_base_colour(mesh), texture=np.array(result.texture), report=result.report,
                         preview=preview)


def _follow(handle: remote.JobHandle, progress: Optional[ProgressCallback],
            cancel: Optional[CancelToken]) -> remote.Result:
    def on_event(event: remote.Event) -> None:
        if cancel is not None and cancel.cancelled:
            handle.cancel()
        if progress is not None and isinstance(event, remote.Progress):
            progress(ProgressEvent(event.stage, event.view, event.views, event.step, event.steps,
                                   None if event.preview is None else np.array(event.preview), event.message))

    return handle.result(on_event)


def _texture(texture: Union[np.ndarray, str, Path, None], mesh: Mesh) -> np.ndarray:
    """The texture of an inpaint_seams job, read as the job reads it: RGBA where alpha marks holes,
    RGB (a quarter fewer bytes on the wire) where the alpha is opaque."""
    image = read_texture(texture, mesh)
    return image if (image[:, :, 3] < 255).any() else np.ascontiguousarray(image[:, :, :3])
