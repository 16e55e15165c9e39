"""The texgen GPU server: ``texgen serve``. See server/README.md and docs/protocol.md.

app : the ROUTER poll loop, fair queue, limits, heartbeats, shutdown
worker : one process per GPU running the pipeline, heartbeating from its I/O thread
auth : CURVE keys and the loopback-or-keys bind policy
jobs : jobs and the round-robin queue
"""

from .app import Server, ServerConfig, run

__all__ = ["Server", "ServerConfig", "run"]
