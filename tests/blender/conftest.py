"""Fixtures for the Blender add-on tests, run by the Blender venv's pytest (bpy + the add-on's wheels):

    .venv-blender/bin/python -m pytest tests/blender

The add-on is enabled the way Blender enables an extension: from a (temporary) user extension
repository, as ``bl_ext.texgen_test.texgen``, after the build's own vendoring step. Blender's user
folders point into a temporary directory, so nothing here touches a real Blender setup.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
ADDON_DIR = ROOT / "blender_addon"
REPO_MODULE = "texgen_test"
ADDON_MODULE = f"bl_ext.{REPO_MODULE}.texgen"
if importlib.util.find_spec("bpy") is not None:
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="texgen-blender-user-"))
    import bpy
else:  # the project's own venv: these tests run through tests/test_blender_suite.py
    collect_ignore_glob = ["test_*.py"]


def load_build_module():
    """blender_addon/build.py as a module (it is a script, not part of a package)."""
    spec = importlib.util.spec_from_file_location("texgen_addon_build", ADDON_DIR / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def build_module():
    return load_build_module()


@pytest.fixture(scope="session")
def addon(build_module) -> Iterator:
    """The add-on enabled as an extension; yields its top-level module."""
    build_module.vendor()
    repo_dir = Path(tempfile.mkdtemp(prefix="texgen-extensions-"))
    (repo_dir / "texgen").symlink_to(ADDON_DIR, target_is_directory=True)
    prefs = bpy.context.preferences
    prefs.use_preferences_save = False
    repo = prefs.extensions.repos.new(name="texgen test", module=REPO_MODULE, custom_directory=str(repo_dir),
                                      source="USER")
    assert bpy.ops.preferences.addon_enable(module=ADDON_MODULE) == {"FINISHED"}
    yield sys.modules[ADDON_MODULE]
    if ADDON_MODULE in prefs.addons:
        bpy.ops.preferences.addon_disable(module=ADDON_MODULE)
    prefs.extensions.repos.remove(repo)


@pytest.fixture
def mods(addon):
    """The add-on's bpy-side modules (and its job board) as the enabled extension loaded them."""
    class Mods:
        operators = importlib.import_module(f"{ADDON_MODULE}.blender.operators")
        runner = importlib.import_module(f"{ADDON_MODULE}.blender.runner")
        materials = importlib.import_module(f"{ADDON_MODULE}.blender.materials")
        jobs = importlib.import_module(f"{ADDON_MODULE}.core.jobs")
    return Mods


@pytest.fixture
def scene(addon):
    """A fresh empty scene (factory settings) with the add-on enabled."""
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    for collection in (bpy.data.meshes, bpy.data.materials, bpy.data.images):
        for block in list(collection):
            collection.remove(block)
    bpy.context.preferences.system.use_online_access = False
    settings = bpy.context.scene.texgen
    settings.prompt = "red bricks"
    settings.views, settings.view_size, settings.texture_size, settings.steps = 2, 64, 64, 2
    settings.missing_uvs, settings.image_storage, settings.together = "ASK", "PACK", False
    return bpy.context.scene


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---------------------------------------------------------------------------- a real texgen server
SERVER_PYTHON = Path(os.environ.get("TEXGEN_SERVER_PYTHON", ROOT / ".venv" / "bin" / "python"))


def _server_unavailable() -> Optional[str]:
    """Why a texgen server cannot be started here, or None when it can."""
    if not SERVER_PYTHON.exists():
        return f"no project venv at {SERVER_PYTHON} (set TEXGEN_SERVER_PYTHON)"
    probe = subprocess.run([str(SERVER_PYTHON), "-m", "texgen", "serve", "--help"], cwd=ROOT, capture_output=True,
                           text=True, timeout=120)
    if probe.returncode:
        return f"`texgen serve` is not available yet: {(probe.stderr or probe.stdout).strip()[-300:]}"
    return None
