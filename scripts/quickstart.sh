#!/usr/bin/env bash
# Set up texgen and texture a sample asset.
#   scripts/quickstart.sh          the default model (SD 1.5 + ControlNet depth; downloads ~4 GB once)
#   scripts/quickstart.sh --tiny   a tiny random model made locally: no download, a smoke test of the
#                                  whole pipeline (the texture is noise, the files are real)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PYOPENGL_PLATFORM=egl
model=()
if [ "${1:-}" = "--tiny" ]; then
  [ -f .tiny-models/sd15/model_index.json ] || .venv/bin/texgen models make-tiny .tiny-models/sd15 --arch sd15-controlnet
  model=(--model .tiny-models/sd15 --view-size 128 --texture-size 512 --steps 4)
fi
.venv/bin/texgen texture assets/crate.obj --prompt "an old wooden crate, painted planks, stencilled letters" \
  "${model[@]}" --out out/crate --overwrite
echo "open out/crate/crate_preview.png, or import out/crate/crate.glb into Blender"
