"""Which meshes a batch textures, with which prompt and options, and where their outputs go.

Assets come from ``SRC`` by glob, or from a manifest (CSV, JSON Lines or TOML ``[[asset]]``
tables) whose rows name a ``path`` relative to SRC plus ``prompt``, ``negative_prompt``, ``seed``
and any other TextureSettings key (a row's ``init_texture`` image is relative to SRC too). A
prompt comes from the manifest row, else from a sidecar ``MESH.prompt.txt`` (or
``MESH.obj.prompt.txt``) next to the mesh, else from the batch prompt, a template filled from
``{stem}``, ``{name}``, ``{parent}`` and ``{relpath}``.

Path safety: an asset is refused (and recorded as failed) when its path (or its row's
``init_texture`` image) is absolute, contains ``..``, or resolves (through symlinks) outside SRC,
or when its output folder would resolve outside DST.
"""

from __future__ import annotations

import csv
import json
import string
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Optional, Union, get_args, get_origin, get_type_hints

from ..errors import ConfigError
from ..export import TEMP_SUFFIX, output_paths, safe_name
from ..mesh import MESH_SUFFIXES
from ..pipeline import resolve_settings
from ..settings import TextureSettings

TEMPLATE_FIELDS = ("stem", "name", "parent", "relpath")
SIDECAR_SUFFIX = ".prompt.txt"
MANIFEST_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".toml": "toml"}
DEFAULT_GLOB = "**/*"


@dataclass(frozen=True)
class Asset:
    """One mesh of the batch.

    key : the ledger key: the mesh's path relative to SRC (POSIX), or the manifest path as
        written when it was refused
    source : the mesh file (None when refused)
    out_dir, name : where its outputs go (``texgen.export.output_paths(out_dir, name)``)
    settings : everything texture_mesh needs, prompt included (None when refused)
    error : why the asset cannot run (unsafe path, missing file, no prompt); empty when it can
    origin : where its prompt came from ("manifest row 3", "sidecar", "template")
    """

    key: str
    source: Optional[Path]
    out_dir: Optional[Path]
    name: str
    settings: Optional[TextureSettings]
    error: str = ""
    origin: str = ""


@dataclass(frozen=True)
class BatchSource:
    """What the user asked for: folders, glob, manifest and batch-wide defaults.

    defaults.prompt is the prompt template (may be empty when every asset has its own prompt).
    """

    src: Path
    dst: Path
    defaults: TextureSettings
    glob: str = DEFAULT_GLOB
    manifest: Optional[Path] = None


def plan_assets(source: BatchSource) -> list[Asset]:
    """The batch's assets in a stable order; ConfigError for a bad manifest or template, before any work."""
    src, dst = source.src.resolve(), source.dst.resolve()
    if not src.is_dir():
        raise ConfigError(f"SRC {source.src} is not a folder")
    if dst == src:
        raise ConfigError(f"--out {source.dst} is SRC itself; outputs such as NAME.obj would replace the inputs")
    check_template(source.defaults.prompt)
    if source.manifest is not None:
        if source.glob != DEFAULT_GLOB:
            raise ConfigError("--glob and --manifest do not mix: the manifest lists the assets")
        rows = read_manifest(source.manifest)
    else:
        relpaths = [path.relative_to(src).as_posix() for path in discover(src, dst, source.glob)]
        rows = [(relpath, {"path": relpath}) for relpath in relpaths]
    assets, seen = [], {}
    for where, row in rows:
        asset = _asset(src, dst, where, row, source)
        if asset.key in seen:
            raise ConfigError(f"{where}: path {asset.key!r} repeats {seen[asset.key]}")
        seen[asset.key] = where
        assets.append(asset)
    return _unique_names(assets)


def discover(src: Path, dst: Path, pattern: str) -> list[Path]:
    """Mesh files under ``src`` matching ``pattern``, outside ``dst``, hidden files left out, sorted."""
    if not pattern or unsafe_reason(pattern):
        raise ConfigError(f"--glob: {pattern!r} must be a relative pattern inside SRC, such as '**/*.obj'")
    found = []
    for path in src.glob(pattern):
        relative = path.relative_to(src)
        if path.suffix.lower() not in MESH_SUFFIXES or any(part.startswith(".") for part in relative.parts):
            continue
        if path.resolve().is_relative_to(dst) or not path.is_file():
            continue
        found.append(path)
    return sorted(found, key=lambda p: p.relative_to(src).as_posix())


def read_manifest(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(where, row) per asset of a CSV, JSON Lines or TOML manifest; ``where`` names file and row."""
    kind = MANIFEST_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(f"{path}: unknown manifest format; use .csv, .jsonl or .toml")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the manifest {path}: {exc.strerror or exc}") from None
    rows = {"csv": _csv_rows, "jsonl": _jsonl_rows, "toml": _toml_rows}[kind](path, text)
    for where, row in rows:
        if not str(row.get("path", "")).strip():
            raise ConfigError(f"{where}: no path; every row needs the mesh's path relative to SRC")
    return rows


def _csv_rows(path: Path, text: str) -> list[tuple[str, dict[str, Any]]]:
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames or "path" not in [name.strip() for name in reader.fieldnames]:
        raise ConfigError(f"{path}: the first line must name the columns, one of them 'path'")
    rows = []
    for row in reader:
        where = f"{path} line {reader.line_num}"
        if None in row:
            raise ConfigError(f"{where}: more cells than columns")
        values = {key.strip(): _typed(key.strip(), cell.strip(), where) for key, cell in row.items()
                  if cell is not None and cell.strip()}
        rows.append((where, values))
    return rows


def _jsonl_rows(path: Path, text: str) -> list[tuple[str, dict[str, Any]]]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not valid JSON: {exc.msg}") from None
        if not isinstance(row, dict):
            raise ConfigError(f"{where}: expected a JSON object, got {type(row).__name__}")
        rows.append((where, row))
    return rows


def _toml_rows(path: Path, text: str) -> list[tuple[str, dict[str, Any]]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    tables = data.get("asset")
    if not isinstance(tables, list) or set(data) - {"asset"}:
        raise ConfigError(f"{path}: expected only [[asset]] tables, one per mesh")
    return [(f"{path} [[asset]] {number}", dict(table)) for number, table in enumerate(tables, 1)]


def _typed(key: str, cell: str, where: str) -> Any:
    """A CSV cell as the type its TextureSettings key takes (unknown keys stay text for validation)."""
    hint = get_type_hints(TextureSettings).get(key, str)
    kinds = get_args(hint) if get_origin(hint) is Union else (hint,)
    if bool in kinds:
        if cell.lower() in ("true", "yes", "1"):
            return True
        if cell.lower() in ("false", "no", "0"):
            return False
        raise ConfigError(f"{where}: key {key!r} must be true or false, got {cell!r}")
    for kind in (int, float):
        if kind in kinds:
            try:
                return kind(cell)
            except ValueError:
                if str not in kinds:
                    raise ConfigError(f"{where}: key {key!r} must be {kind.__name__}, got {cell!r}") from None
    return cell


def check_template(template: str) -> None:
    """ConfigError unless every ``{field}`` of the prompt template is one of TEMPLATE_FIELDS."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ConfigError(f"--prompt: bad template {template!r}: {exc}; write {{{{ and }}}} for braces") from None
    for name in fields:
        if name not in TEMPLATE_FIELDS:
            raise ConfigError(f"--prompt: unknown field {{{name}}} in {template!r}; use "
                              + ", ".join(f"{{{field}}}" for field in TEMPLATE_FIELDS))


def fill_template(template: str, relpath: PurePosixPath) -> str:
    """The template filled from a mesh's path relative to SRC."""
    return template.format(stem=relpath.stem, name=relpath.name, parent=relpath.parent.name,
                           relpath=relpath.as_posix())


def unsafe_reason(raw: str) -> str:
    """Why a manifest path is refused before touching the disk, or "" when it is a plain relative path."""
    if not raw or "\0" in raw:
        return "empty path or NUL character"
    if PurePosixPath(raw).is_absolute() or PureWindowsPath(raw).is_absolute() or PureWindowsPath(raw).drive:
        return "absolute path; manifest paths are relative to SRC"
    if ".." in PurePosixPath(raw.replace("\\", "/")).parts:
        return "'..' in the path; manifest paths must stay inside SRC"
    return ""


def _asset(src: Path, dst: Path, where: str, row: dict[str, Any], source: BatchSource) -> Asset:
    raw = str(row["path"]).strip()
    overrides = {key: value for key, value in row.items() if key != "path"}
    try:  # every row's options are checked, whatever its path, so a typo stops the batch before any work
        settings = resolve_settings(None, source.defaults, overrides)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    reason = unsafe_reason(raw)
    if reason:
        return Asset(raw, None, None, "", None, f"refused: {reason}", where)
    relpath = PurePosixPath(raw.replace("\\", "/"))
    key = relpath.as_posix()
    mesh = (src / relpath).resolve()
    if not mesh.is_relative_to(src):
        return Asset(key, None, None, "", None, "refused: the path resolves outside SRC (a symlink?)", where)
    out_dir = (dst / relpath.parent).resolve()
    if not out_dir.is_relative_to(dst):
        return Asset(key, None, None, "", None, "refused: the output folder resolves outside DST (a symlink?)", where)
    name = safe_name(relpath.stem)
    if mesh in [path.resolve() for path in output_paths(out_dir, name).values()]:
        return Asset(key, None, None, "", None, "refused: an output would replace the mesh itself", where)
    if not mesh.is_file():
        return Asset(key, None, out_dir, name, None, f"mesh file not found: {src / relpath}", where)
    if mesh.suffix.lower() not in MESH_SUFFIXES:
        return Asset(key, None, out_dir, name, None,
                     f"unsupported mesh format {mesh.suffix!r}; use one of {', '.join(MESH_SUFFIXES)}", where)
    start = str(overrides.get("init_texture", ""))
    if start not in ("", "mesh"):  # an image of the row's own, relative to SRC like its mesh
        image = (src / start).resolve()
        reason = unsafe_reason(start) or ("" if image.is_relative_to(src) else "resolves outside SRC (a symlink?)")
        if reason:
            return Asset(key, None, out_dir, name, None, f"refused: init_texture {start!r}: {reason}", where)
        settings = replace(settings, init_texture=str(image))
    if overrides.get("prompt"):
        return Asset(key, mesh, out_dir, name, settings, "", where)
    prompt, origin = _fallback_prompt(src, src / relpath, relpath, source.defaults.prompt)
    if not prompt:
        return Asset(key, mesh, out_dir, name, None, f"no prompt: add a prompt to the manifest, a "
                     f"{mesh.stem}{SIDECAR_SUFFIX} file next to the mesh, or --prompt TEMPLATE", where)
    return Asset(key, mesh, out_dir, name, replace(settings, prompt=prompt), "", origin)


def _fallback_prompt(src: Path, mesh: Path, relpath: PurePosixPath, template: str) -> tuple[str, str]:
    """(prompt, origin) from a sidecar next to the mesh, else from the template."""
    for sidecar in (mesh.with_name(mesh.name + SIDECAR_SUFFIX), mesh.with_name(mesh.stem + SIDECAR_SUFFIX)):
        if sidecar.is_file() and sidecar.resolve().is_relative_to(src):
            text = " ".join(sidecar.read_text(encoding="utf-8", errors="replace").split())
            if text:
                return text, "sidecar"
    return (fill_template(template, relpath), "template") if template else ("", "")


def _unique_names(assets: list[Asset]) -> list[Asset]:
    """Give assets whose outputs would collide (crate.obj and crate.glb in one folder) NAME_EXT names."""
    groups: dict[tuple[Path, str], list[int]] = {}
    for index, asset in enumerate(assets):
        if asset.out_dir is not None and asset.name:
            groups.setdefault((asset.out_dir, asset.name), []).append(index)
    result = list(assets)
    for indices in groups.values():
        if len(indices) > 1:
            for index in indices:
                asset = assets[index]
                suffix = PurePosixPath(asset.key).suffix.lstrip(".")
                result[index] = replace(asset, name=safe_name(f"{asset.name}_{suffix}"))
    return result


def stale_temp_files(out_dir: Path, names: list[str]) -> list[Path]:
    """Temporary files that an interrupted atomic write of ``names`` left in ``out_dir``."""
    if not out_dir.is_dir():
        return []
    return [path for name in names for path in out_dir.glob(f".{name}.*{TEMP_SUFFIX}")]


__all__ = ["Asset", "BatchSource", "plan_assets", "discover", "read_manifest", "check_template", "fill_template",
           "unsafe_reason", "stale_temp_files", "TEMPLATE_FIELDS", "DEFAULT_GLOB"]
