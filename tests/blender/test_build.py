"""The build: vendoring, per-platform zips whose manifest validates, and a zip that Blender installs."""

from __future__ import annotations

import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

import bpy
import pytest

from conftest import ADDON_DIR, ADDON_MODULE, ROOT


@pytest.fixture(scope="module")
def wheels_source(build_module) -> Path | None:
    """A folder holding every wheel the build needs, when an earlier build left one (else PyPI)."""
    folder = ADDON_DIR / "wheels"
    needed = len(build_module.PLATFORMS) * len(build_module.PACKAGES)
    return folder if folder.is_dir() and len(list(folder.glob("*.whl"))) >= needed else None


@pytest.fixture(scope="module")
def built(build_module, wheels_source, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("dist")
    return {platform: build_module.build_platform(platform, out, wheels_source) for platform in build_module.PLATFORMS}


def test_vendored_modules_are_texgen_own_unmodified(build_module):
    folder = build_module.vendor()
    for name in build_module.VENDORED:
        assert (folder / name).read_bytes() == (ROOT / "texgen" / name).read_bytes()


def test_vendoring_refuses_heavy_imports(build_module, tmp_path):
    for name in ("protocol.py", "client.py"):
        (tmp_path / name).write_text("import numpy\nfrom . import protocol\n")
    (tmp_path / "client.py").write_text("import torch\n")
    with pytest.raises(build_module.BuildError, match="imports 'torch'"):
        build_module.vendor(tmp_path / "addon", source=tmp_path)
    (tmp_path / "client.py").write_text("from .pipeline import texture_mesh\n")
    with pytest.raises(build_module.BuildError, match="does not vendor"):
        build_module.vendor(tmp_path / "addon", source=tmp_path)


def test_each_platform_zip_validates_with_blenders_validator(built, build_module):
    for platform, (archive, validator) in built.items():
        expected = "blender" if build_module.shutil.which("blender") else "bpy's blender_ext.py"
        assert validator == expected
        manifest = build_module.check_archive(archive)
        assert manifest["platforms"] == [platform] and manifest["id"] == "texgen"
        assert manifest["blender_version_min"] == "4.2.0" and "network" in manifest["permissions"]
        with zipfile.ZipFile(archive) as bundle:
            names = set(bundle.namelist())
        assert {w.removeprefix("./") for w in manifest["wheels"]} == {n for n in names if n.startswith("wheels/")}
        assert not any("__pycache__" in n or n.endswith("build.py") or n.startswith("dist/") for n in names)
        tag = {"windows-x64": "win_amd64", "macos-arm64": "macosx", "linux-x64": "manylinux"}[platform]
        assert all(tag in w for w in manifest["wheels"])
        assert "examples/texture_selected.py" in names and "vendor/protocol.py" in names


def test_check_archive_catches_a_missing_wheel(built, build_module, tmp_path):
    archive, _ = built["linux-x64"]
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(broken, "w") as target:
        for item in source.infolist():
            if not item.filename.startswith("wheels/msgpack"):
                target.writestr(item, source.read(item))
    with pytest.raises(build_module.BuildError, match="msgpack"):
        build_module.check_archive(broken)


def test_blender_installs_the_zip_with_its_wheels(built, addon):
    """Install the Linux zip through Blender's own extension installer, as a user would."""
    if sys.platform != "linux":
        pytest.skip("the installed zip is the Linux one")
    archive, _ = built["linux-x64"]
    prefs = bpy.context.preferences
    assert bpy.ops.preferences.addon_disable(module=ADDON_MODULE) == {"FINISHED"}
    repo = prefs.extensions.repos.new(name="zip install", module="texgen_zip", source="USER",
                                      custom_directory=tempfile.mkdtemp(prefix="texgen-zip-"))
    try:
        assert bpy.ops.extensions.package_install_files(filepath=str(archive), repo=repo.module,
                                                        enable_on_install=True) == {"FINISHED"}
        assert "bl_ext.texgen_zip.texgen" in prefs.addons and hasattr(bpy.types.Scene, "texgen")
        site = Path(bpy.utils.user_resource("EXTENSIONS", path=".local")) / "lib" / \
            f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
        installed = {p.name.split("-")[0] for p in site.glob("*.dist-info")}
        assert {"pyzmq", "msgpack"} <= installed
        manifest = tomllib.loads((Path(repo.directory) / "texgen" / "blender_manifest.toml").read_text())
        assert manifest["platforms"] == ["linux-x64"]
        assert bpy.ops.preferences.addon_disable(module="bl_ext.texgen_zip.texgen") == {"FINISHED"}
    finally:
        prefs.extensions.repos.remove(repo)
        assert bpy.ops.preferences.addon_enable(module=ADDON_MODULE) == {"FINISHED"}
