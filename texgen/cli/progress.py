"""A rich progress bar fed by texgen ProgressEvents: one line for views, one for steps."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from ..progress import ProgressCallback, ProgressEvent


@contextmanager
def progress_bar() -> Iterator[ProgressCallback]:
    """Yield a progress callback that draws views and denoising steps on the terminal."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=False) as bar:
        views = bar.add_task("views", total=None)
        steps = bar.add_task("steps", total=None, visible=False)

        def update(event: ProgressEvent) -> None:
            if event.views:
                bar.update(views, total=event.views, completed=event.view,
                           description=event.message or f"view {event.view + 1}/{event.views}")
            if event.stage == "generate" and event.steps:
                bar.update(steps, total=event.steps, completed=event.step, visible=True)
            elif event.message:
                bar.update(views, description=event.message)
            if event.stage == "done":
                bar.update(views, completed=event.views or 1, total=event.views or 1)  # a job without views: 1/1

        yield update
