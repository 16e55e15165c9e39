"""Build the texgen Blender extension: one installable zip per platform.

    python blender_addon/build.py                        # every platform, into blender_addon/dist/
    python blender_addon/build.py --platform linux-x64   # one platform
    python blender_addon/build.py --offline WHEELS_DIR   # take the wheels from a folder, not PyPI

Steps: copy texgen's own ``protocol.py``, ``client.py`` and ``uvtiles.py`` into ``vendor/`` (never a hand copy),
download unmodified pyzmq and msgpack wheels for Python 3.11 (Blender 4.2-5.0) and 3.13
(Blender 5.1+) with ``pip download``, write the manifest's ``platforms`` and ``wheels``, zip and
validate: with ``blender --command extension validate`` when a Blender binary is on PATH, else with
the same validator shipped inside an importable ``bpy`` module, and always with a manifest check
of our own (the TOML parses, every listed wheel is in the zip).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path
from typing import Optional, Sequence

ADDON_DIR = Path(__file__).resolve().parent
TEXGEN_DIR = ADDON_DIR.parent / "texgen"
VENDORED = ("protocol.py", "client.py", "uvtiles.py")
VENDOR_IMPORTS = frozenset({"numpy", "zmq", "msgpack"})  # besides the standard library
PACKAGES = ("pyzmq", "msgpack")
PYTHONS = ("3.11", "3.13")
# Blender platform -> pip --platform tags, most specific first.
PLATFORMS = {
    "windows-x64": ("win_amd64",),
    "macos-arm64": ("macosx_11_0_arm64",),
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
}
EXCLUDED = ("__pycache__", "dist", "wheels", "build.py", ".gitignore")


class BuildError(RuntimeError):
    """The build cannot go on; the message says why."""


def vendor(addon_dir: Path = ADDON_DIR, source: Path = TEXGEN_DIR) -> Path:
    """Copy texgen's protocol, client and UV-tile modules, unmodified, into ``addon_dir/vendor`` (a package).

    Refuses modules that import anything beyond the standard library, numpy, pyzmq, msgpack and
    each other, so torch or diffusers can never reach Blender this way.
    """
    target = addon_dir / "vendor"
    target.mkdir(parents=True, exist_ok=True)
    for name in VENDORED:
        path = source / name
        if not path.is_file():
            raise BuildError(f"{path} is missing: the add-on vendors texgen's own {name}")
        check_imports(path)
        shutil.copyfile(path, target / name)
    (target / "__init__.py").write_text('"""Copied from texgen by blender_addon/build.py; do not edit."""\n')
    return target


def check_imports(path: Path) -> None:
    siblings = {Path(name).stem for name in VENDORED}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                names = [node.module] if node.module else [alias.name for alias in node.names]
                if not set(names) <= siblings:
                    raise BuildError(f"{path.name}:{node.lineno} imports .{names} which the add-on does not vendor")
                continue
            roots = [node.module.split(".")[0]]
        else:
            continue
        for root in roots:
            if root not in sys.stdlib_module_names and root not in VENDOR_IMPORTS:
                raise BuildError(f"{path.name}:{node.lineno} imports {root!r}: the vendored modules may import only "
                                 f"the standard library and {', '.join(sorted(VENDOR_IMPORTS))}")


def fetch_wheels(platform: str, dest: Path, offline: Optional[Path] = None) -> list[Path]:
    """Download (or take from ``offline``) the pyzmq and msgpack wheels ``platform`` needs."""
    wheels: list[Path] = []
    dest.mkdir(parents=True, exist_ok=True)
    for python in PYTHONS:
        with tempfile.TemporaryDirectory() as scratch:
            command = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--no-deps",
                       "--implementation", "cp", "--python-version", python, "--dest", scratch]
            for tag in PLATFORMS[platform]:
                command += ["--platform", tag]
            if offline is not None:
                command += ["--no-index", "--find-links", str(offline)]
            result = subprocess.run(command + list(PACKAGES), capture_output=True, text=True)
            if result.returncode:
                raise BuildError(f"pip could not fetch {', '.join(PACKAGES)} for {platform}, Python {python}:\n"
                                 f"{result.stderr.strip()[-2000:]}")
            for wheel in sorted(Path(scratch).glob("*.whl")):
                kept = dest / wheel.name
                shutil.copyfile(wheel, kept)
                if kept not in wheels:
                    wheels.append(kept)
    return wheels


def fill_manifest(text: str, platform: str, wheels: Sequence[Path]) -> str:
    """The manifest with ``platforms`` set to ``platform`` and ``wheels`` to ./wheels/NAME."""
    listed = ", ".join(f'"./wheels/{w.name}"' for w in wheels)
    for key, value in (("platforms", f'["{platform}"]'), ("wheels", f"[{listed}]")):
        text, count = re.subn(rf"^{key} = \[[^\]]*\]", f"{key} = {value}", text, count=1, flags=re.M)
        if count != 1:
            raise BuildError(f"blender_manifest.toml has no `{key} = [...]` line to fill")
    return text


def package_files(addon_dir: Path) -> list[Path]:
    """The add-on's own files, manifest excluded (it is written filled)."""
    files = []
    for path in sorted(addon_dir.rglob("*")):
        relative = path.relative_to(addon_dir)
        if path.is_file() and not any(part in EXCLUDED for part in relative.parts) \
                and relative.name != "blender_manifest.toml" and path.suffix != ".pyc":
            files.append(path)
    return files


def build_platform(platform: str, out_dir: Path, offline: Optional[Path] = None,
                   addon_dir: Path = ADDON_DIR) -> tuple[Path, str]:
    """Vendor, fetch the wheels, zip and validate the extension for one platform.

    Returns the zip and the name of the validator that passed it."""
    if platform not in PLATFORMS:
        raise BuildError(f"unknown platform {platform!r}; use one of {', '.join(PLATFORMS)}")
    vendor(addon_dir)
    wheels = fetch_wheels(platform, addon_dir / "wheels", offline)
    manifest_text = (addon_dir / "blender_manifest.toml").read_text()
    version = tomllib.loads(manifest_text)["version"]
    manifest = fill_manifest(manifest_text, platform, wheels)
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = out_dir / f"texgen-{version}-{platform.replace('-', '_')}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("blender_manifest.toml", manifest)
        for path in package_files(addon_dir):
            bundle.write(path, path.relative_to(addon_dir).as_posix())
        for wheel in wheels:
            bundle.write(wheel, f"wheels/{wheel.name}")
    return archive, validate(archive)


def validate(archive: Path) -> str:
    """Validate ``archive``; return which validator ran. Raises BuildError on a problem."""
    check_archive(archive)
    blender = shutil.which("blender")
    if blender:
        command, used = [blender, "--factory-startup", "--command", "extension", "validate", str(archive)], "blender"
    elif (script := bundled_validator()) is not None:
        command, used = [sys.executable, str(script), "validate", str(archive)], "bpy's blender_ext.py"
    else:
        return "manifest check"
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise BuildError(f"{archive.name} failed validation by {used}:\n{result.stdout}{result.stderr}")
    return used


def bundled_validator() -> Optional[Path]:
    """Blender's own extension validator, as shipped inside the ``bpy`` module, when it is installed."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
        if found:
            return found[-1]
    return None


def check_archive(archive: Path) -> dict:
    """Our own check: the manifest parses, has the required keys, and every wheel is in the zip."""
    with zipfile.ZipFile(archive) as bundle:
        names = set(bundle.namelist())
        if "blender_manifest.toml" not in names:
            raise BuildError(f"{archive.name}: no blender_manifest.toml at the top level")
        manifest = tomllib.loads(bundle.read("blender_manifest.toml").decode())
    for key in ("schema_version", "id", "version", "name", "tagline", "maintainer", "type",
                "blender_version_min", "license"):
        if key not in manifest:
            raise BuildError(f"{archive.name}: manifest lacks {key!r}")
    if "network" not in manifest.get("permissions", {}):
        raise BuildError(f"{archive.name}: manifest does not declare the network permission")
    for wheel in manifest.get("wheels", []):
        if wheel.removeprefix("./") not in names:
            raise BuildError(f"{archive.name}: manifest lists {wheel} but the zip does not hold it")
    for package in ("pyzmq", "msgpack"):
        for python in PYTHONS:
            if not any(_wheel_serves(w, package, python) for w in manifest.get("wheels", [])):
                raise BuildError(f"{archive.name}: no {package} wheel for Python {python}")
    if "__init__.py" not in names or "vendor/client.py" not in names:
        raise BuildError(f"{archive.name}: the add-on code or the vendored client is missing")
    return manifest


def _wheel_serves(wheel: str, package: str, python: str) -> bool:
    """Whether wheel file ``wheel`` of ``package`` installs on CPython ``python`` (exact or abi3)."""
    parts = Path(wheel).name[:-4].split("-")
    if parts[0].lower().replace("_", "-") != package:
        return False
    python_tag, abi_tag = parts[-3], parts[-2]
    wanted = int(python.split(".")[1])
    for tag in python_tag.split("."):
        if tag in ("py3", f"cp3{wanted}") or (abi_tag == "abi3" and tag.startswith("cp3") and int(tag[3:]) <= wanted):
            return True
    return False


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--platform", choices=sorted(PLATFORMS), action="append",
                        help="build for this platform only (repeatable); default: all")
    parser.add_argument("--offline", type=Path, metavar="DIR", help="take the wheels from DIR instead of PyPI")
    parser.add_argument("--out", type=Path, default=ADDON_DIR / "dist", help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        for platform in args.platform or list(PLATFORMS):
            archive, validator = build_platform(platform, args.out, args.offline)
            print(f"{archive}  ({archive.stat().st_size / 2**20:.1f} MiB, validated by {validator})")
    except BuildError as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
