"""One progress hook for the whole pipeline, and a cancel token.

The pipeline calls ``progress(ProgressEvent)``; the CLI turns events into a progress bar,
the server into wire events and Blender into its status bar. Cancellation is a
:class:`CancelToken` that any thread may set; long loops call ``raise_if_cancelled``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .errors import Cancelled


@dataclass
class ProgressEvent:
    """A progress report.

    stage : one of "load", "plan", "render", "generate", "project", "fill", "export", "done"
    view, views : 0-based index of the current view and the number of views (0 when not per-view)
    step, steps : denoising step within the current diffusion call
    preview : optional small (h, w, 3) uint8 image of the current step or texture
    message : short human-readable text
    """

    stage: str
    view: int = 0
    views: int = 0
    step: int = 0
    steps: int = 0
    preview: Optional[np.ndarray] = None
    message: str = ""


ProgressCallback = Callable[[ProgressEvent], None]


def no_progress(event: ProgressEvent) -> None:
    """The default callback: ignore events."""


class CancelToken:
    """A thread-safe cancel flag."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


class Timer:
    """Collects seconds per named stage."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._start = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - self._start
        self._start = now
