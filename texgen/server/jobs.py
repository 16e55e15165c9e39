"""Jobs and the fair queue: round-robin between clients, first-in first-out within a client."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Optional

from ..protocol import Message


@dataclass
class Job:
    """One texture or inpaint_seams request, from its arrival to its terminal reply."""

    id: str
    client: bytes
    message: Message
    frames: list = field(default_factory=list)  # the received array frames, forwarded as they came
    table: list = field(default_factory=list)  # their header["frames"] entries
    submitted: float = field(default_factory=time.monotonic)
    started: Optional[float] = None
    worker: Optional[int] = None
    progress: dict = field(default_factory=dict)
    cancelling: bool = False
    last_sent: float = field(default_factory=time.monotonic)

    @property
    def kind(self) -> str:
        return self.message.type

    @property
    def client_tag(self) -> str:
        """A short stable name for the client in logs and status (not its routing id)."""
        return client_tag(self.client)


def client_tag(identity: bytes) -> str:
    return hashlib.sha1(identity).hexdigest()[:8]


class FairQueue:
    """Queued jobs, served one client at a time in turn so no client can starve another."""

    def __init__(self) -> None:
        self._queues: "OrderedDict[bytes, deque[Job]]" = OrderedDict()

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def push(self, job: Job) -> None:
        self._queues.setdefault(job.client, deque()).append(job)

    def pop(self) -> Optional[Job]:
        """The next job: the oldest of the client whose turn it is; that client goes to the back."""
        for client, jobs in self._queues.items():
            job = jobs.popleft()
            if jobs:
                self._queues.move_to_end(client)
            else:
                del self._queues[client]
            return job
        return None

    def remove(self, job_id: str) -> Optional[Job]:
        for client, jobs in self._queues.items():
            for job in jobs:
                if job.id == job_id:
                    jobs.remove(job)
                    if not jobs:
                        del self._queues[client]
                    return job
        return None

    def order(self) -> list[Job]:
        """All queued jobs in the order :meth:`pop` will hand them out."""
        lanes = [list(jobs) for jobs in self._queues.values()]
        ordered, depth = [], 0
        while any(depth < len(lane) for lane in lanes):
            ordered.extend(lane[depth] for lane in lanes if depth < len(lane))
            depth += 1
        return ordered

    def position(self, job_id: str) -> int:
        """1-based place in :meth:`order`, 0 when not queued."""
        for index, job in enumerate(self.order(), 1):
            if job.id == job_id:
                return index
        return 0
