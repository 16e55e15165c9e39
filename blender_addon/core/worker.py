"""The worker thread: it alone owns the connection to the server (ZeroMQ sockets are not
thread-safe) and runs jobs one after the other, posting :class:`JobEvent` objects to a queue.

It never touches Blender data; the main thread drains the queue (see ``jobs.JobBoard``).
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import Callable, Optional, Protocol, Sequence

from .jobs import JobEvent
from .request import JobRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ticket:
    """What the worker may see of a job: its id, its request and its cancel flag."""

    id: str
    request: JobRequest
    cancel_event: threading.Event


Emit = Callable[[JobEvent], None]


class ServerUnreachable(Exception):
    """The server did not answer at all; every job still queued would fail the same way."""


class Remote(Protocol):
    """A connection to a texgen server (see ``remote.ClientRemote``)."""

    def run(self, ticket: Ticket, emit: Emit) -> None:
        """Run one job, emitting its events, the last being "result", "failed" or "cancelled"."""

    def close(self) -> None:
        """Close the socket at once (linger 0)."""


class Worker:
    """A daemon thread that connects lazily, runs its tickets in order, closes the connection and
    ends: its life is one run's, so nothing lingers if Blender drops the run (a new file loaded)."""

    def __init__(self, connect: Callable[[], Remote], events: "queue.Queue[JobEvent]",
                 tickets: Sequence[Ticket]) -> None:
        self._connect = connect
        self._events = events
        self._tickets = list(tickets)
        self._thread = threading.Thread(target=self._loop, name="texgen-worker", daemon=True)
        self._thread.start()

    def join(self, timeout: float = 10.0) -> None:
        """Wait for the tickets to end (cancel them first to hurry)."""
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _loop(self) -> None:
        remote: Optional[Remote] = None
        unreachable = ""
        try:
            for ticket in self._tickets:
                if ticket.cancel_event.is_set():
                    self._events.put(JobEvent(ticket.id, "cancelled", message="cancelled before it started"))
                    continue
                if unreachable:
                    self._events.put(JobEvent(ticket.id, "failed", message=unreachable))
                    continue
                try:
                    if remote is None:
                        remote = self._connect()
                    remote.run(ticket, self._events.put)
                except ServerUnreachable as exc:
                    unreachable = str(exc)
                    self._events.put(JobEvent(ticket.id, "failed", message=unreachable))
                except Exception as exc:  # one failed job must not kill the worker: report it instead
                    log.exception("texgen job %s failed", ticket.id)
                    self._events.put(JobEvent(ticket.id, "failed", message=describe(exc)))
                    if remote is not None:
                        remote.close()
                        remote = None
        finally:
            if remote is not None:
                remote.close()


def describe(exc: BaseException) -> str:
    """A one-line message for a person: the error's own words, or its type when it has none."""
    text = str(exc).strip()
    return text if text else type(exc).__name__
