"""`texgen serve`: run the GPU server that keeps the models warm (see server/README.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import add_load_options, load_options_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..protocol import Limits

    defaults = Limits()
    parser = subparsers.add_parser(
        "serve", help="run the texgen GPU server",
        description="Serve texture and seam jobs over ZeroMQ, with the models loaded once per worker. "
                    "A bind other than loopback needs CURVE keys (--keys/--allow) or --insecure.")
    parser.add_argument("--bind", default="tcp://127.0.0.1:5555", help="ZeroMQ endpoint (default %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes, one per GPU (default 1)")
    parser.add_argument("--model", action="append", dest="models", metavar="SPEC",
                        help="model to serve, loaded once per worker; repeat for several (the first is the default)")
    parser.add_argument("--device", default="auto", help="auto (GPU i for worker i), cpu, mps, cuda or cuda:N")
    parser.add_argument("--keys", type=Path, metavar="DIR", help="folder with server.key_secret (CURVE)")
    parser.add_argument("--allow", type=Path, metavar="DIR", help="folder with the allowed clients' *.key files")
    parser.add_argument("--insecure", action="store_true",
                        help="allow a non-loopback bind without CURVE: anyone who reaches the port may use it")
    add_load_options(parser, in_config=False)
    limits = parser.add_argument_group("limits (each refused with a clear error reply)")
    limits.add_argument("--max-message-mb", type=float, default=defaults.max_message_bytes / 2**20)
    limits.add_argument("--max-faces", type=int, default=defaults.max_faces)
    limits.add_argument("--max-texture-size", type=int, default=defaults.max_texture_size)
    limits.add_argument("--max-views", type=int, default=defaults.max_views)
    limits.add_argument("--max-queue", type=int, default=defaults.max_queue)
    timing = parser.add_argument_group("timing")
    timing.add_argument("--heartbeat", type=float, default=1.0, help="seconds between heartbeats (default 1)")
    timing.add_argument("--client-timeout", type=float, default=15.0,
                        help="cancel the jobs of a client silent this long (default 15 s)")
    timing.add_argument("--shutdown-grace", type=float, default=10.0,
                        help="seconds SIGTERM waits for running jobs to stop (default 10)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..protocol import Limits
    from ..server import Server, ServerConfig
    from ..settings import DEFAULT_MODEL

    limits = Limits(max_message_bytes=int(args.max_message_mb * 2**20), max_faces=args.max_faces,
                    max_texture_size=args.max_texture_size, max_views=args.max_views, max_queue=args.max_queue)
    config = ServerConfig(bind=args.bind, workers=args.workers, models=args.models or [DEFAULT_MODEL],
                          device=args.device, load_options=load_options_from_args(args), limits=limits,
                          keys_dir=args.keys, allow_dir=args.allow,
                          insecure=args.insecure, heartbeat_s=args.heartbeat, client_timeout_s=args.client_timeout,
                          shutdown_grace_s=args.shutdown_grace)
    return Server(config).serve_forever()
