"""What a job asks for: typed objects built once from the panel (or the scripting API's arguments).

Option names are texgen's own (``texgen.settings.TextureSettings``), so the CLI flag
``--view-size``, the TOML key ``view_size`` and the wire option ``view_size`` all match here too.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass
from typing import Any, Optional, Union
from urllib.parse import urlsplit

import numpy as np

from .meshdata import MeshArrays

DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"
JOB_KINDS = ("texture", "inpaint_seams")


class RequestError(ValueError):
    """A setting cannot be used; the message names it and says what to do."""


@dataclass(frozen=True)
class ServerConfig:
    """Where the texgen server is and how to authenticate to it.

    server_key : the server's CURVE public key (Z85, 40 characters); empty for a plain loopback server
    client_public_key, client_secret_key : this client's CURVE key pair (``texgen keys generate``)
    timeout_s : a job fails when the server says nothing (no event, no heartbeat) for this long
    """

    address: str = DEFAULT_ADDRESS
    server_key: str = ""
    client_public_key: str = ""
    client_secret_key: str = ""
    connect_timeout_s: float = 5.0
    timeout_s: float = 60.0

    @property
    def host(self) -> str:
        return urlsplit(self.address).hostname or ""

    @property
    def is_loopback(self) -> bool:
        """True when the address never leaves this machine (127.0.0.0/8, ::1, localhost)."""
        host = self.host
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @property
    def uses_curve(self) -> bool:
        return bool(self.server_key)

    def validate(self) -> "ServerConfig":
        parts = urlsplit(self.address)
        if parts.scheme != "tcp" or not parts.hostname or parts.port is None:
            raise RequestError(f"Server address {self.address!r} is not of the form tcp://HOST:PORT "
                               f"(for example {DEFAULT_ADDRESS})")
        keys = (self.server_key, self.client_public_key, self.client_secret_key)
        if any(keys) and not all(keys):
            raise RequestError("CURVE keys: give the server's public key and this client's public and secret "
                               "keys together (make a pair with `texgen keys generate`), or none of them")
        for name, key in zip(("server key", "client public key", "client secret key"), keys, strict=True):
            if key and len(key) != 40:
                raise RequestError(f"CURVE {name}: a Z85 key has 40 characters, this one has {len(key)}")
        if not self.uses_curve and not self.is_loopback:
            raise RequestError(f"{self.address} is not on this machine: a remote texgen server needs CURVE keys "
                               "(Server key, Client public key and Client secret key in the add-on's preferences)")
        if self.connect_timeout_s <= 0 or self.timeout_s <= 0:
            raise RequestError("timeouts must be positive numbers of seconds")
        return self


@dataclass(frozen=True)
class TextureOptions:
    """The panel's generation settings; ``views`` 0 means "auto" (next-best-view selection);
    ``init_strength`` is how much the views repaint a starting image (a texture job's ``texture``)."""

    prompt: str = ""
    negative_prompt: str = ""
    model: str = ""
    seed: int = 0
    views: int = 8
    view_size: int = 768
    texture_size: int = 1024
    steps: int = 25
    guidance: float = 7.5
    init_strength: float = 0.6

    def validate(self) -> "TextureOptions":
        if not self.prompt.strip():
            raise RequestError("Prompt is empty: describe the texture to paint, e.g. 'weathered oak, carved runes'")
        if self.view_size % 8:
            raise RequestError(f"View size must be a multiple of 8, got {self.view_size}")
        return self

    def to_wire(self) -> dict[str, Any]:
        """Options as texgen names them; an empty model means the server's default. A job that
        starts from an image adds init_texture = "mesh" (:meth:`JobRequest.wire_options`)."""
        options: dict[str, Any] = asdict(self)
        options["views"] = self.views if self.views > 0 else "auto"
        if not self.model:
            del options["model"]
        return options

    def replace(self, **changes: Any) -> "TextureOptions":
        return TextureOptions(**{**asdict(self), **changes})


@dataclass(frozen=True)
class SeamOptions:
    """Inpaint Seams settings, named as ``texgen.seams_repair.SeamSettings`` names them.

    method : "classical" (no model) or "diffusion"; band : repair width on each side of a seam,
    in texels; threshold : repair seams whose colour jump (CIE Delta E) is above it, 0 for every
    seam; hard_edge_deg : leave seams alone where the surface turns by more than this, as colours
    may change there by design (180 repairs them too); the rest matter for "diffusion" only
    (``views`` 0 keeps the server's default)
    """

    method: str = "classical"
    band: int = 8
    threshold: float = 2.3
    hard_edge_deg: float = 30.0
    prompt: str = ""
    negative_prompt: str = ""
    model: str = ""
    seed: int = 0
    views: int = 0
    view_size: int = 512
    steps: int = 25
    guidance: float = 7.5

    def validate(self) -> "SeamOptions":
        if self.method not in ("classical", "diffusion"):
            raise RequestError(f"Seam method must be classical or diffusion, got {self.method!r}")
        if self.view_size % 8:
            raise RequestError(f"View size must be a multiple of 8, got {self.view_size}")
        if not 0 < self.hard_edge_deg <= 180:
            raise RequestError(f"Hard edge angle must be above 0 and at most 180 degrees, got {self.hard_edge_deg:g}")
        return self

    def to_wire(self) -> dict[str, Any]:
        options: dict[str, Any] = asdict(self)
        options["threshold"] = self.threshold if self.threshold > 0 else "all"
        for key in ("model", "views"):
            if not options[key]:
                del options[key]
        return options


Options = Union[TextureOptions, SeamOptions]


@dataclass(frozen=True)
class JobRequest:
    """One job: a mesh, what to paint on it, and the texture to repair (``inpaint_seams``) or to
    start from (``texture``, optional).

    targets : the Blender object names whose images the result goes to (several when the
        objects were sent together as one scene)
    texture : (H, W, 3) uint8, top row first
    """

    kind: str
    mesh: MeshArrays
    options: Options
    targets: tuple[str, ...]
    texture: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        if self.kind not in JOB_KINDS:
            raise RequestError(f"job kind must be one of {JOB_KINDS}, got {self.kind!r}")
        if self.kind == "inpaint_seams" and self.texture is None:
            raise RequestError("an inpaint_seams job carries the texture to repair")
        wanted = SeamOptions if self.kind == "inpaint_seams" else TextureOptions
        if not isinstance(self.options, wanted):
            raise RequestError(f"a {self.kind} job takes {wanted.__name__}, not {type(self.options).__name__}")

    def wire_options(self) -> dict[str, Any]:
        """The job's options on the wire: a texture job with a ``texture`` starts from it."""
        options = self.options.to_wire()
        if self.kind == "texture" and self.texture is not None:
            options["init_texture"] = "mesh"  # the texture frame, as the server reads it
        return options
