#!/usr/bin/env bash
# Set up everything texgen needs on a fresh Linux machine, idempotently:
#   the EGL packages for headless rendering (apt, when root), a virtual environment .venv with
#   the CPU build of torch installed first (a plain `torch` requirement would pull a CUDA build
#   of several GB), texgen itself with its test and Ray extras, and, with --blender, a separate
#   .venv-blender holding Blender as a module (bpy) plus only the add-on's own wheels.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
   && ! dpkg -s libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1 >/dev/null 2>&1; then
  echo "== apt: EGL packages for headless rendering"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1 >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  echo "== installing $TORCH_SPEC (CPU build on this machine) before anything that depends on torch"
  .venv/bin/python -m pip install -q "$TORCH_SPEC"
fi
echo "== installing texgen"
.venv/bin/python -m pip install -q -e ".[test,ray]"
# the GLB tests check every written file with the Khronos glTF validator when npm can fetch it (else they skip)
if command -v npm >/dev/null 2>&1 && [ ! -f .gltf-validator/node_modules/gltf-validator/index.js ]; then
  echo "== installing the Khronos glTF validator (npm) for the GLB tests"
  npm install --silent --no-fund --no-audit --prefix .gltf-validator gltf-validator@2.0.0-dev.3.10 >/dev/null \
    || echo "   npm could not install it: the GLB validation tests will skip"
fi

if [ "${1:-}" = "--blender" ]; then
  # Blender runs the add-on in its own Python with only the add-on's bundled wheels: the tests do too.
  if [ ! -x .venv-blender/bin/python ]; then
    echo "== creating .venv-blender (Blender 5.0 as a module, CPython 3.11; about 1 GB)"
    "$PYTHON" -m venv .venv-blender
  fi
  if ! .venv-blender/bin/python -c "import bpy" >/dev/null 2>&1; then
    .venv-blender/bin/python -m pip install -q --upgrade pip
    .venv-blender/bin/python -m pip install -q bpy==5.0.1
  fi
  .venv-blender/bin/python -m pip install -q pytest pytest-timeout
  echo "== building the Blender add-on (vendors texgen's client, fetches pyzmq/msgpack wheels, validates)"
  .venv/bin/python blender_addon/build.py
  .venv-blender/bin/python -m pip install -q --no-deps blender_addon/wheels/*cp311*manylinux*x86_64*.whl
fi
