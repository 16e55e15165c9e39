"""CURVE security for the server: key generation, the bind policy and the client allow-list.

Policy: a loopback bind (127.0.0.0/8, ::1, localhost, ipc://, inproc://) may run without keys.
Any other bind needs ``--keys DIR`` (holding ``server.key_secret``) and ``--allow DIR`` (the
clients' public ``*.key`` files); ``--insecure`` overrides this, with a loud warning.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from ..errors import ConfigError

log = logging.getLogger(__name__)
SERVER_KEY_NAME = "server"


def is_loopback(endpoint: str) -> bool:
    """True when ``endpoint`` can only be reached from this machine."""
    transport, _, rest = endpoint.partition("://")
    if transport in ("ipc", "inproc"):
        return True
    if transport != "tcp":
        return False
    host = rest.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*", an interface name or a host name: reachable from outside
        return False


def generate_keys(directory: Path, name: str) -> tuple[Path, Path]:
    """Write NAME.key (public) and NAME.key_secret into ``directory``; never overwrite."""
    directory = Path(directory)
    public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise ConfigError(f"{path} already exists; choose another --name or remove the old key first")
    directory.mkdir(parents=True, exist_ok=True)
    made_public, made_secret = zmq.auth.create_certificates(str(directory), name)
    Path(made_secret).chmod(0o600)
    return Path(made_public), Path(made_secret)


@dataclass
class Security:
    """How the server socket is secured: ``mode`` is "curve" or "none"."""

    mode: str
    secret_file: Optional[Path] = None
    allow_dir: Optional[Path] = None

    def apply(self, context: zmq.Context, socket: zmq.Socket) -> Optional[ThreadAuthenticator]:
        """Make ``socket`` a CURVE server with the allow-list (before bind); return the authenticator."""
        if self.mode != "curve":
            return None
        public, secret = zmq.auth.load_certificate(str(self.secret_file))
        authenticator = ThreadAuthenticator(context, log=logging.getLogger("texgen.server.zap"))
        authenticator.start()
        authenticator.configure_curve(domain="*", location=str(self.allow_dir))
        socket.curve_secretkey, socket.curve_publickey, socket.curve_server = secret, public, True
        return authenticator


def resolve_security(bind: str, keys_dir: Optional[Path], allow_dir: Optional[Path], insecure: bool) -> Security:
    """Decide the security mode from the CLI options; raise ConfigError with the fix when unsafe."""
    if (keys_dir is None) != (allow_dir is None):
        raise ConfigError("--keys and --allow go together: --keys DIR holds server.key_secret, --allow DIR the "
                          "clients' public *.key files")
    if keys_dir is not None:
        secret = Path(keys_dir) / f"{SERVER_KEY_NAME}.key_secret"
        if not secret.is_file():
            raise ConfigError(f"{secret} not found: run `texgen keys generate {keys_dir} --name server`")
        try:
            _, secret_key = zmq.auth.load_certificate(str(secret))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{secret}: not a ZeroMQ secret key file ({exc})") from None
        if not secret_key:
            raise ConfigError(f"{secret}: holds no secret key")
        clients = sorted(Path(allow_dir).glob("*.key")) if Path(allow_dir).is_dir() else []
        if not clients:
            raise ConfigError(f"no client public keys (*.key) in {allow_dir}: run `texgen keys generate DIR "
                              f"--name NAME` for each client and copy its NAME.key into {allow_dir}")
        log.info("CURVE on %s: %d allowed client keys from %s", bind, len(clients), allow_dir)
        return Security("curve", secret, Path(allow_dir))
    if is_loopback(bind):
        return Security("none")
    if not insecure:
        raise ConfigError(f"{bind} is reachable from other machines, so it needs CURVE keys: run `texgen keys "
                          "generate KEYS --name server`, `texgen keys generate CLIENTS --name NAME` per client, "
                          "then `texgen serve --keys KEYS --allow CLIENTS` (or bind tcp://127.0.0.1:PORT; "
                          "--insecure allows anyone who can reach the port to use the GPU)")
    log.warning("!" * 78)
    log.warning("UNAUTHENTICATED, UNENCRYPTED: anyone who can reach %s can send jobs and read results "
                "(--insecure). Use --keys/--allow on untrusted networks.", bind)
    log.warning("!" * 78)
    return Security("none")
