#!/usr/bin/env bash
# Run ON the GPU machine (the device tool), after bench/device/prepare.sh here: the full-size
# architectures with random weights (they time like the real weights), the paint loop, and the
# geometry stage, each log copied to $OUT. At most 9 minutes: each step has its own limit.
#   SMOKE=1 bash bench/device/run.sh   the same steps on tiny models, on any machine with the venv
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/texgen-device-out}
mkdir -p "$OUT"
export PYOPENGL_PLATFORM=egl HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
if [ -z "${SMOKE:-}" ]; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  vendor=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json  # where the device's driver keeps it
  [ -f "$vendor" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$vendor
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site:$PWD
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
  python3 -c "import importlib.metadata as m; print(*(f'{n} {m.version(n)}' for n in ('torch', 'diffusers',
    'transformers', 'huggingface_hub', 'accelerate', 'trimesh', 'pyrender')), sep='\n')" | tee -a "$OUT/gpu.txt"
  diffusion=(--random-weights --dtype fp16 --views 8 --size 768 --steps 25 --inpaint)
  pipeline=(--model random:sd15-controlnet --views 8 --view-size 768 --steps 25)
  python=python3
else
  diffusion=(--tiny --threads 2 --inpaint)
  pipeline=(--tiny --views 4 --view-size 128 --steps 2)
  python=.venv/bin/python
fi
step() {  # name, seconds, command...
  local name=$1 seconds=$2
  shift 2
  echo "== $name"
  timeout "$seconds" "$@" 2>&1 | tee "$OUT/$name.log"
  echo "== $name: exit ${PIPESTATUS[0]}" | tee -a "$OUT/$name.log"
}
step diffusion 300 "$python" bench/bench_diffusion.py "${diffusion[@]}"
step pipeline 150 "$python" bench/bench_pipeline.py "${pipeline[@]}"
step geometry 90 "$python" bench/bench_geometry.py --repeat 3
