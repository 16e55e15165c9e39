"""Job state: one :class:`JobBoard` holds every job keyed by its id.

The worker thread never touches a :class:`Job`: it posts :class:`JobEvent` objects into the
board's queue, and the main thread applies them with :meth:`JobBoard.drain`. Cancelling is a
per-job ``threading.Event`` that the worker reads, never a class-wide flag.
"""

from __future__ import annotations

import enum
import queue
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .request import JobRequest


class JobState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})


@dataclass(frozen=True)
class JobEvent:
    """What the worker reports about one job.

    kind : "accepted" (queued at ``position``), "progress", "result", "failed" or "cancelled"
    fraction : overall progress in [0, 1]; image : preview (progress) or texture (result), uint8 top row first
    """

    job_id: str
    kind: str
    fraction: float = 0.0
    message: str = ""
    position: int = 0
    image: Optional[np.ndarray] = None
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class Job:
    """One job and everything known about it on the main thread."""

    id: str
    request: JobRequest
    state: JobState = JobState.QUEUED
    fraction: float = 0.0
    message: str = "waiting for the server"
    preview: Optional[np.ndarray] = None
    preview_serial: int = 0
    texture: Optional[np.ndarray] = None
    report: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    cancel_event: threading.Event = field(default_factory=threading.Event)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def label(self) -> str:
        return ", ".join(self.request.targets)

    @property
    def notes(self) -> list[str]:
        """What the server's report says it did to the input (wrapped UVs, skipped faces, a resized
        texture...), for the user to read beside "done"."""
        mesh = self.report.get("mesh")
        notes = [*(mesh.get("notes") or [] if isinstance(mesh, dict) else []), *(self.report.get("notes") or [])]
        return [note for note in notes if isinstance(note, str)]

    def apply(self, event: JobEvent) -> None:
        """Update from a worker event (main thread only)."""
        if self.finished:
            return
        if event.kind == "accepted":
            self.message = f"queued at position {event.position}" if event.position else "starting"
        elif event.kind == "progress":
            self.state = JobState.RUNNING
            self.fraction = max(self.fraction, min(1.0, event.fraction))
            self.message = event.message or self.message
            if event.image is not None:
                self.preview = event.image
                self.preview_serial += 1
        elif event.kind == "result":
            self.state, self.fraction, self.message = JobState.DONE, 1.0, "done"
            self.texture, self.report = event.image, event.report
        elif event.kind == "failed":
            self.state, self.error, self.message = JobState.FAILED, event.message, event.message
        elif event.kind == "cancelled":
            self.state, self.message = JobState.CANCELLED, event.message or "cancelled"
        else:
            raise ValueError(f"unknown job event kind {event.kind!r}")


class JobBoard:
    """Every job of this Blender session, keyed by job id, plus the queue the worker writes to."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.events: "queue.Queue[JobEvent]" = queue.Queue()

    def add(self, request: JobRequest) -> Job:
        job = Job(id=f"blender-{uuid.uuid4().hex[:16]}", request=request)
        self.jobs[job.id] = job
        return job

    def cancel(self, job_id: str) -> None:
        """Ask the worker to cancel ``job_id``; the job ends when the worker confirms."""
        job = self.jobs.get(job_id)
        if job is not None and not job.finished:
            job.cancel_event.set()
            job.message = "cancelling..."

    def active(self) -> list[Job]:
        return [job for job in self.jobs.values() if not job.finished]

    def drain(self, limit: int = 256) -> list[Job]:
        """Apply up to ``limit`` pending events; return the jobs they changed, in order, once each."""
        changed: dict[str, Job] = {}
        for _ in range(limit):
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                break
            job = self.jobs.get(event.job_id)
            if job is not None:
                job.apply(event)
                changed[job.id] = job
        return list(changed.values())

    def forget(self, job_id: str) -> None:
        self.jobs.pop(job_id, None)
