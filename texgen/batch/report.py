"""What a batch shows people: the live progress bar, the final summary, ``--status`` and DST/index.html."""

from __future__ import annotations

import html
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote

from rich.markup import escape

from ..export import atomic_write
from .ledger import AssetRow, Ledger

INDEX_NAME = "index.html"
TIME_KINDS = ("texture", "write", "hash", "ledger")
MAX_LISTED_FAILURES = 20


@dataclass
class BatchSummary:
    """What one run did.

    assets : assets in the batch; skipped : done before, inputs unchanged
    failed_before : failed before, inputs unchanged, not retried (--retry-failed retries them)
    seconds : totals per kind of work: "texture" (inside texture_mesh, as its report says),
        "write" (texgen.export.write_outputs), "hash" (input and output sha256), "ledger" (SQLite)
    """

    run: int = 0
    assets: int = 0
    skipped: int = 0
    failed_before: int = 0
    done: int = 0
    failed: int = 0
    requeued: int = 0
    interrupted: bool = False
    failures: list[tuple[str, str]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TIME_KINDS, 0.0))
    wall_s: float = 0.0

    def add_time(self, kind: str, seconds: float) -> None:
        self.seconds[kind] = self.seconds.get(kind, 0.0) + seconds

    def as_dict(self) -> dict[str, Any]:
        return {"assets": self.assets, "skipped": self.skipped, "failed_before": self.failed_before,
                "done": self.done, "failed": self.failed, "requeued": self.requeued, "interrupted": self.interrupted,
                "seconds": self.seconds, "wall_s": self.wall_s}


class BatchProgress:
    """A rich progress bar over the assets to do: ETA, done and failed counts, the current assets.

    On a terminal only failures are printed above the bar; elsewhere (logs, CI) one line per asset.
    """

    def __init__(self, console: Any, total: int) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.console = console
        self._bar = Progress(SpinnerColumn(), TextColumn("textures"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("[green]{task.fields[done]} done[/] [red]{task.fields[failed]} failed[/]"),
                             TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                             TextColumn("{task.fields[current]}"), console=console, transient=False)
        self._task = self._bar.add_task("batch", total=total, done=0, failed=0, current="")
        self._running: dict[str, float] = {}
        self.done = self.failed = 0

    def __enter__(self) -> "BatchProgress":
        self._bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._bar.stop()

    def started(self, key: str) -> None:
        self._running[key] = time.monotonic()
        self._refresh()

    def requeued(self, key: str, why: str) -> None:
        self._running.pop(key, None)
        self._bar.console.print(f"[yellow]again[/] {escape(key)}: {escape(why)}", highlight=False)
        self._refresh()

    def finished(self, key: str, error: str = "") -> None:
        started = self._running.pop(key, None)
        seconds = "" if started is None else f" ({time.monotonic() - started:.1f} s)"
        if error:
            self.failed += 1
            self._bar.console.print(f"[red]failed[/] {escape(key)}{seconds}: {escape(error)}", highlight=False)
        else:
            self.done += 1
            if not self.console.is_terminal:
                self._bar.console.print(f"done {escape(key)}{seconds}", highlight=False)
        self._bar.advance(self._task)
        self._refresh()

    def _refresh(self) -> None:
        current = ", ".join(list(self._running)[:3]) + (" ..." if len(self._running) > 3 else "")
        self._bar.update(self._task, done=self.done, failed=self.failed, current=current)


def print_summary(console: Any, summary: BatchSummary, dst: Path) -> None:
    """The end-of-run table: counts, time per kind of work, throughput and the first failures."""
    from rich.table import Table

    table = Table(title=f"texgen batch: {dst}", show_header=False)
    table.add_column(justify="left")
    table.add_column(justify="right")
    rows = [("assets", summary.assets), ("done now", summary.done), ("failed now", summary.failed),
            ("skipped (done before, unchanged)", summary.skipped),
            ("failed before, not retried (--retry-failed)", summary.failed_before)]
    if summary.requeued:
        rows.append(("given to another worker", summary.requeued))
    for label, value in rows:
        table.add_row(label, str(value))
    finished = summary.done + summary.failed
    table.add_row("wall time", f"{summary.wall_s:.1f} s")
    if finished and summary.wall_s > 0:
        table.add_row("throughput", f"{60.0 * finished / summary.wall_s:.1f} assets/min")
    for kind, seconds in summary.seconds.items():
        table.add_row(f"  {kind}", f"{seconds:.1f} s")
    console.print(table)
    for key, error in summary.failures[:MAX_LISTED_FAILURES]:
        console.print(f"[red]failed[/] {escape(key)}: {escape(error)}", highlight=False)
    if len(summary.failures) > MAX_LISTED_FAILURES:
        console.print(f"... and {len(summary.failures) - MAX_LISTED_FAILURES} more (texgen batch --status {dst})")
    if summary.interrupted:
        console.print("interrupted: run the same command again to resume")
    console.print(f"contact sheet: {dst / INDEX_NAME}")


def print_status(console: Any, ledger: Ledger) -> None:
    """``texgen batch --status DST``: counts per state, the latest runs, the failed assets."""
    from rich.table import Table

    counts = ledger.counts()
    table = Table(title=f"ledger {ledger.path}")
    for state in counts:
        table.add_column(state, justify="right")
    table.add_row(*(str(count) for count in counts.values()))
    console.print(table)
    runs = Table(title="latest runs")
    for column in ("run", "started", "finished", "executor", "done", "failed", "skipped"):
        runs.add_column(column)
    for run in ledger.runs():
        summary = run["summary"] or {}
        runs.add_row(str(run["id"]), _clock(run["started"]), _clock(run["finished"]) or "(running or killed)",
                     run["executor"] or "", *(str(summary.get(k, "")) for k in ("done", "failed", "skipped")))
    console.print(runs)
    rows = ledger.rows()
    failed = [row for row in rows if row.state == "failed"]
    for row in failed[:MAX_LISTED_FAILURES]:
        console.print(f"[red]failed[/] {escape(row.key)} (attempts {row.attempts}): {escape(row.error or '')}",
                      highlight=False)
    if len(failed) > MAX_LISTED_FAILURES:
        console.print(f"... and {len(failed) - MAX_LISTED_FAILURES} more failed assets")
    running = [row.key for row in rows if row.state == "running"]
    if running:
        console.print("running (or left by a killed batch, redone on the next run): "
                      + escape(", ".join(running[:10])))


def _clock(stamp: Optional[float]) -> str:
    return "" if stamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def write_index(dst: Path, rows: list[AssetRow]) -> Path:
    """DST/index.html: a contact sheet of every asset's preview, prompt and state, with relative links."""
    cards = "\n".join(_card(row) for row in rows)
    counts = {state: sum(row.state == state for row in rows) for state in ("done", "failed", "pending", "running")}
    line = ", ".join(f"{count} {state}" for state, count in counts.items() if count)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>texgen batch: {html.escape(dst.name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #181818; color: #ddd; margin: 1em; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 12px; }}
.card {{ background: #242424; border-radius: 6px; padding: 8px; border-top: 4px solid #555; }}
.card.done {{ border-color: #3a3; }} .card.failed {{ border-color: #c33; }} .card.running {{ border-color: #cc3; }}
.card img {{ width: 100%; height: 180px; object-fit: contain; background: #111; }}
.key {{ font-weight: bold; word-break: break-all; }} .prompt {{ font-style: italic; }}
.error {{ color: #f88; white-space: pre-wrap; }} a {{ color: #8cf; }}
</style></head><body>
<h1>texgen batch: {html.escape(dst.name)}</h1><p>{html.escape(line or "no assets")}</p>
<div class="grid">
{cards}
</div></body></html>
"""
    path = dst / INDEX_NAME
    atomic_write(path, page.encode("utf-8"))
    return path


def _card(row: AssetRow) -> str:
    def link(kind: str) -> str:
        return quote(row.outputs[kind]["path"]) if kind in row.outputs else ""

    parts = [f'<div class="card {html.escape(row.state)}">']
    if link("preview"):
        parts.append(f'<a href="{link("preview")}"><img src="{link("preview")}" loading="lazy" alt="preview of '
                     f'{html.escape(row.key)}"></a>')
    parts.append(f'<div class="key">{html.escape(row.key)}</div>')
    stale = " · the files shown are from an earlier run" if row.outputs and row.state != "done" else ""
    parts.append(f'<div>{html.escape(row.state)} · attempts {row.attempts}{stale}</div>')
    if row.prompt:
        parts.append(f'<div class="prompt">{html.escape(row.prompt)}</div>')
    if row.error:
        parts.append(f'<div class="error">{html.escape(row.error)}</div>')
    files = [f'<a href="{link(kind)}">{kind}</a>' for kind in ("glb", "obj", "albedo", "report") if link(kind)]
    if files:
        parts.append("<div>" + " · ".join(files) + "</div>")
    return "".join(parts) + "</div>"


def relative_to_dst(path: Path, dst: Path) -> str:
    """``path`` relative to DST with forward slashes, for the ledger and the contact sheet."""
    return Path(os.path.relpath(path, dst)).as_posix()


__all__ = ["BatchSummary", "BatchProgress", "print_summary", "print_status", "write_index", "relative_to_dst",
           "INDEX_NAME"]
