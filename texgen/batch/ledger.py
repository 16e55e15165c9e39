"""The batch ledger: one SQLite file in DST that records every asset's state and inputs.

Each asset (keyed by its path relative to SRC) is ``pending``, ``running``, ``done`` or
``failed``, with the sha256 of its mesh file, its prompt, the sha256 of its options, its output
files with their sha256, the error if any, attempts and timings. The ``events`` table logs
every state change per run, so "done exactly once" can be checked.

The database runs in WAL mode, so ``texgen batch --status`` can read it while a batch writes.
Only one batch may write a ledger at a time (:class:`BatchLock`); a row left ``running`` by a
killed batch is therefore stale and gets redone.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import filelock

from ..errors import TexgenError

LEDGER_NAME = "texgen-batch.sqlite"
LOCK_NAME = "texgen-batch.lock"
STATES = ("pending", "running", "done", "failed")
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS assets (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
    source TEXT, out_dir TEXT, name TEXT,
    input_sha256 TEXT, input_size INTEGER, input_mtime_ns INTEGER,
    prompt TEXT, options_sha256 TEXT, options TEXT,
    outputs TEXT, error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    started REAL, finished REAL, timings TEXT, run INTEGER, worker TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL, finished REAL, pid INTEGER, command TEXT, executor TEXT, summary TEXT
);
CREATE TABLE IF NOT EXISTS events (
    run INTEGER NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL, at REAL NOT NULL, note TEXT
);
CREATE INDEX IF NOT EXISTS events_key ON events (key);
"""


@dataclass(frozen=True)
class InputFacts:
    """What identifies an asset's input: the sha256 of the mesh file and the files it reads
    (:func:`inputs_sha256`, with their total size and newest mtime when it was taken), the prompt,
    and the sha256 of the resolved options."""

    sha256: str
    size: int
    mtime_ns: int
    prompt: str
    options_sha256: str
    options: str


@dataclass
class AssetRow:
    """One row of the ledger; ``outputs`` maps an output kind to {"path" (relative to DST), "sha256", "bytes"}."""

    key: str
    state: str
    source: Optional[str] = None
    out_dir: Optional[str] = None
    name: Optional[str] = None
    input_sha256: Optional[str] = None
    input_size: Optional[int] = None
    input_mtime_ns: Optional[int] = None
    prompt: Optional[str] = None
    options_sha256: Optional[str] = None
    options: Optional[str] = None
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: Optional[str] = None
    attempts: int = 0
    started: Optional[float] = None
    finished: Optional[float] = None
    timings: dict[str, float] = field(default_factory=dict)
    run: Optional[int] = None
    worker: Optional[str] = None

    def same_inputs(self, facts: InputFacts) -> bool:
        return self.input_sha256 == facts.sha256 and self.options_sha256 == facts.options_sha256


def file_sha256(path: Path) -> str:
    """sha256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def inputs_sha256(files: dict[str, Path]) -> str:
    """sha256 hex digest of a mesh file and the files it reads, by name (the mesh first): the mesh
    file's own digest when it reads none, else one over each file's name and digest."""
    if len(files) == 1:
        return file_sha256(next(iter(files.values())))
    digest = hashlib.sha256()
    for name, path in files.items():
        digest.update(f"{name}\0{file_sha256(path)}\n".encode("utf-8"))
    return digest.hexdigest()


def options_digest(options: dict[str, Any]) -> tuple[str, str]:
    """(canonical JSON, its sha256) of a settings mapping."""
    text = json.dumps(options, sort_keys=True, separators=(",", ":"))
    return text, hashlib.sha256(text.encode("utf-8")).hexdigest()


class BatchLock:
    """An exclusive lock on DST's ledger for the life of one batch: an OS file lock (flock on
    POSIX, msvcrt on Windows, through ``filelock``), released by the OS when the process dies, so
    kill -9 never leaves it stuck."""

    def __init__(self, dst: Path) -> None:
        self.path = dst / LOCK_NAME
        self._lock = filelock.FileLock(self.path, timeout=0)

    def __enter__(self) -> "BatchLock":
        try:
            self._lock.acquire()
        except filelock.Timeout:
            raise TexgenError(f"another texgen batch is writing to {self.path.parent}; wait for it to finish "
                              "(texgen batch --status shows its progress)") from None
        return self

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()


class Ledger:
    """The SQLite ledger of one DST folder. Use from one thread; readers may be other processes."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:
            if not self.path.is_file():
                raise TexgenError(f"no batch ledger at {self.path}; is this a `texgen batch --out` folder?")
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None, timeout=10)
            if not self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'assets'").fetchone():
                self._db.close()
                raise TexgenError(f"the batch ledger {self.path} is still being created; try again in a moment")
        else:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise TexgenError(f"{self.path} was written by a newer texgen (ledger version {version}); "
                                  "upgrade texgen")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._db.row_factory = sqlite3.Row

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ runs

    def begin_run(self, command: str, executor: str) -> int:
        cursor = self._db.execute("INSERT INTO runs (started, pid, command, executor) VALUES (?, ?, ?, ?)",
                                  (time.time(), os.getpid(), command, executor))
        return int(cursor.lastrowid)

    def end_run(self, run: int, summary: dict[str, Any]) -> None:
        self._db.execute("UPDATE runs SET finished = ?, summary = ? WHERE id = ?",
                         (time.time(), json.dumps(summary), run))

    def set_executor(self, run: int, executor: str) -> None:
        self._db.execute("UPDATE runs SET executor = ? WHERE id = ?", (executor, run))

    def runs(self, limit: int = 5) -> list[dict[str, Any]]:
        """The latest runs, newest first."""
        rows = self._db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [{**dict(row), "summary": json.loads(row["summary"]) if row["summary"] else None} for row in rows]

    # ------------------------------------------------------------------ assets

    def get(self, key: str) -> Optional[AssetRow]:
        row = self._db.execute("SELECT * FROM assets WHERE key = ?", (key,)).fetchone()
        return None if row is None else _to_row(row)

    def rows(self) -> list[AssetRow]:
        return [_to_row(row) for row in self._db.execute("SELECT * FROM assets ORDER BY key")]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for state, count in self._db.execute("SELECT state, COUNT(*) FROM assets GROUP BY state"):
            counts[state] = count
        return counts

    def events(self, key: Optional[str] = None) -> list[dict[str, Any]]:
        query, args = "SELECT * FROM events", ()
        if key is not None:
            query, args = query + " WHERE key = ?", (key,)
        return [dict(row) for row in self._db.execute(query + " ORDER BY rowid", args)]

    def plan(self, items: Iterable[tuple[str, str, str, str, InputFacts]]) -> None:
        """Mark assets pending with their inputs, in one transaction: (key, source, out_dir, name, facts)."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO assets (key, state, source, out_dir, name, input_sha256, input_size, input_mtime_ns, "
                "prompt, options_sha256, options) VALUES (?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET state = 'pending', source = excluded.source, "
                "out_dir = excluded.out_dir, name = excluded.name, input_sha256 = excluded.input_sha256, "
                "input_size = excluded.input_size, input_mtime_ns = excluded.input_mtime_ns, "
                "prompt = excluded.prompt, options_sha256 = excluded.options_sha256, options = excluded.options, "
                "error = NULL",
                [(key, source, out_dir, name, f.sha256, f.size, f.mtime_ns, f.prompt, f.options_sha256, f.options)
                 for key, source, out_dir, name, f in items])

    def start(self, key: str, run: int, worker: str = "") -> None:
        """pending -> running; counts an attempt."""
        self._change(key, run, "running", "UPDATE assets SET state = 'running', attempts = attempts + 1, "
                     "started = ?, finished = NULL, error = NULL, run = ?, worker = ? WHERE key = ?",
                     (time.time(), run, worker, key))

    def done(self, key: str, run: int, outputs: dict[str, dict[str, Any]], timings: dict[str, float],
             worker: str = "") -> None:
        """running -> done, with the output files, the timings and the worker that painted it."""
        self._change(key, run, "done", "UPDATE assets SET state = 'done', outputs = ?, timings = ?, finished = ?, "
                     "error = NULL, worker = ? WHERE key = ?",
                     (json.dumps(outputs), json.dumps(timings), time.time(), worker, key))

    def fail(self, key: str, run: int, error: str, timings: Optional[dict[str, float]] = None) -> None:
        """Record a failure (a row is made for assets refused before planning)."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("INSERT INTO assets (key, state) VALUES (?, 'failed') ON CONFLICT (key) DO NOTHING",
                             (key,))
            self._db.execute("UPDATE assets SET state = 'failed', error = ?, timings = ?, finished = ?, run = ? "
                             "WHERE key = ?", (error, json.dumps(timings or {}), time.time(), run, key))
            self._event(run, key, "failed", error)

    def release(self, key: str, run: int, note: str) -> None:
        """running -> pending: the batch stopped before the asset finished."""
        self._change(key, run, "pending", "UPDATE assets SET state = 'pending', error = ? WHERE key = ?",
                     (note, key), note)

    def _change(self, key: str, run: int, state: str, sql: str, args: tuple, note: str = "") -> None:
        with self._db:
            self._db.execute("BEGIN")
            if self._db.execute(sql, args).rowcount != 1:
                raise TexgenError(f"ledger {self.path}: no asset {key!r}")
            self._event(run, key, state, note)

    def _event(self, run: int, key: str, state: str, note: str = "") -> None:
        self._db.execute("INSERT INTO events (run, key, state, at, note) VALUES (?, ?, ?, ?, ?)",
                         (run, key, state, time.time(), note))


def _to_row(row: sqlite3.Row) -> AssetRow:
    values = dict(row)
    values["outputs"] = json.loads(values["outputs"]) if values["outputs"] else {}
    values["timings"] = json.loads(values["timings"]) if values["timings"] else {}
    return AssetRow(**values)


__all__ = ["Ledger", "AssetRow", "InputFacts", "BatchLock", "file_sha256", "options_digest", "LEDGER_NAME",
           "STATES"]
