"""Runs the Blender add-on tests (tests/blender) in the Blender venv, the way Blender runs the
add-on: bpy (Blender as a module, which pins numpy 1.26) plus the add-on's own wheels, never torch.
The texgen server those tests start runs in this (the project's) venv.

Create the Blender venv with:

    python3.11 -m venv .venv-blender
    .venv-blender/bin/pip install bpy==5.0.1 pytest pytest-timeout
    .venv/bin/python blender_addon/build.py
    .venv-blender/bin/pip install --no-deps blender_addon/wheels/*cp311*manylinux*.whl
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLENDER_PYTHON = Path(os.environ.get("TEXGEN_BLENDER_PYTHON", ROOT / ".venv-blender" / "bin" / "python"))


@pytest.mark.blender
@pytest.mark.timeout(1800)
@pytest.mark.skipif(not BLENDER_PYTHON.exists(),
                    reason=f"no Blender venv at {BLENDER_PYTHON}: see tests/test_blender_suite.py to create it")
def test_blender_addon_suite():
    env = {**os.environ, "TEXGEN_SERVER_PYTHON": sys.executable}
    result = subprocess.run([str(BLENDER_PYTHON), "-m", "pytest", "tests/blender", "-q", "-rs", "-p",
                             "no:cacheprovider"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1700)
    tail = (result.stdout + result.stderr)[-6000:]
    print(tail)
    assert result.returncode == 0, f"the Blender add-on tests failed:\n{tail}"
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary, tail
    if "skipped" in summary:  # e.g. no `texgen serve` yet: say so where the project's run shows it
        reasons = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
        warnings.warn(f"Blender add-on tests: {summary}: " + "; ".join(reasons), stacklevel=1)
