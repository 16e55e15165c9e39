"""The bridge to texgen's own client, which build.py copies unmodified into ``../vendor/``.

Only the worker thread (and a connection test's thread) uses it: a client belongs to the
thread that made it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ..vendor import client as texgen_client
from .jobs import JobEvent
from .request import ServerConfig
from .worker import Emit, ServerUnreachable, Ticket, describe

CLIENT_NAME = "texgen-blender"


def make_client(config: ServerConfig, retries: int = 2) -> texgen_client.Client:
    """A client for ``config`` (the socket connects in the background; nothing is sent yet).

    retries : Lazy-Pirate retries of a request after ``config.connect_timeout_s`` of silence
    """
    curve: dict[str, Any] = {}
    if config.uses_curve:
        curve = {"server_public_key": config.server_key,
                 "client_keys": (config.client_public_key, config.client_secret_key)}
    return texgen_client.Client(config.address, timeout=config.connect_timeout_s, retries=retries,
                                silence_timeout=config.timeout_s, name=CLIENT_NAME, **curve)


class ClientRemote:
    """Runs tickets through one :class:`texgen.client.Client`, turning its events into :class:`JobEvent`."""

    def __init__(self, config: ServerConfig) -> None:
        self._client = make_client(config)

    def run(self, ticket: Ticket, emit: Emit) -> None:
        request, mesh = ticket.request, ticket.request.mesh
        arrays = (mesh.positions, mesh.faces, mesh.uvs, mesh.uv_faces)
        options = request.wire_options()
        try:
            if request.kind == "texture":
                handle = self._client.submit_texture(*arrays, options=options, name=mesh.name, job_id=ticket.id,
                                                     texture=request.texture)
            else:
                handle = self._client.submit_inpaint_seams(*arrays, request.texture, options=options, name=mesh.name,
                                                           job_id=ticket.id, normals=mesh.normals,
                                                           normal_faces=mesh.normal_faces)
            for event in handle.events():
                if ticket.cancel_event.is_set():
                    handle.cancel()
                translated = translate(ticket.id, event)
                if translated is not None:
                    emit(translated)
        except texgen_client.ServerUnreachable as exc:
            raise ServerUnreachable(str(exc)) from None
        except texgen_client.ClientError as exc:
            emit(JobEvent(ticket.id, "failed", message=describe(exc)))

    def close(self) -> None:
        self._client.close()


def connect(config: ServerConfig) -> ClientRemote:
    return ClientRemote(config)


def translate(job_id: str, event: Any) -> Optional[JobEvent]:
    """One client event as a :class:`JobEvent` (None for a running job's heartbeat)."""
    if isinstance(event, texgen_client.Accepted):
        return JobEvent(job_id, "accepted", position=event.position)
    if isinstance(event, texgen_client.Heartbeat):
        return JobEvent(job_id, "accepted", position=event.position) if event.state == "queued" else None
    if isinstance(event, texgen_client.Progress):
        text = event.message or progress_text(event.stage, event.view, event.views, event.step, event.steps)
        return JobEvent(job_id, "progress", fraction=event.fraction, message=text, image=event.preview)
    if isinstance(event, texgen_client.Result):
        return JobEvent(job_id, "result", fraction=1.0, image=event.texture, report=event.report)
    if isinstance(event, texgen_client.Failed):
        return JobEvent(job_id, "failed", message=f"{event.message} [{event.code}]")
    if isinstance(event, texgen_client.Cancelled):
        return JobEvent(job_id, "cancelled", message=event.message or "cancelled")
    return None


def progress_text(stage: str, view: int, views: int, step: int, steps: int) -> str:
    text = stage
    if views:
        text += f" view {view + 1}/{views}"
    if steps:
        text += f" step {step}/{steps}"
    return text


@dataclass
class Probe:
    """What Test Connection found: ``status`` is "ok", "unreachable", "version", "auth" or "error"."""

    status: str
    message: str
    models: list[str] = field(default_factory=list)
    device: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def probe(config: ServerConfig) -> Probe:
    """Say hello once (no retries, so a dead address answers within the connect timeout) and
    classify the answer."""
    try:
        client = make_client(config, retries=0)
    except texgen_client.AuthRefused as exc:
        return Probe("auth", f"Authentication refused: {exc}")
    except texgen_client.ClientError as exc:
        return Probe("unreachable", f"Not reachable: {exc}")
    try:
        info = client.hello()
    except texgen_client.ServerUnreachable as exc:
        return Probe("unreachable", f"Not reachable: {exc}")
    except texgen_client.VersionMismatch as exc:
        return Probe("version", f"Wrong version: {exc}")
    except texgen_client.AuthRefused as exc:
        return Probe("auth", f"Authentication refused: {exc}")
    except texgen_client.ClientError as exc:
        return Probe("error", f"Unexpected answer: {exc}")
    finally:
        client.close()
    models = [str(m) for m in info.get("models", [])]
    device = str(info.get("device", "?"))
    message = (f"OK: texgen {info.get('texgen', '?')} on {device}, "
               f"models: {', '.join(models) or 'none loaded'}")
    return Probe("ok", message, models, device)
