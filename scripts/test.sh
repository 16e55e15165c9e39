#!/usr/bin/env bash
# The test command: set up (idempotent), then run the whole suite, Blender included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --blender
export PYOPENGL_PLATFORM=egl HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest -q -ra "$@"
