"""Error types. Each message says what went wrong and what to do about it."""


class TexgenError(Exception):
    """Base class of every error texgen raises on purpose."""


class MeshError(TexgenError):
    """The input mesh cannot be used (corrupt file, NaN vertices, bad indices, no UVs...)."""


class ImageError(TexgenError):
    """An input image cannot be read or does not fit the mesh."""


class ModelError(TexgenError):
    """A diffusion model is missing, of the wrong kind, or failed to load."""


class OutOfMemoryError(ModelError):
    """The device ran out of memory; the message lists the options that use less."""


class ConfigError(TexgenError):
    """A setting has a bad value; the message names the key."""


class JobLost(TexgenError):
    """The server lost a job before finishing it (it restarted, or the worker running it died);
    nothing of it was kept, so submitting it again is safe."""


class Cancelled(TexgenError):
    """The job was cancelled by the user; nothing half-done was written."""
