#!/usr/bin/env bash
# Run ON the GPU machine (the device tool), after bench/device/prepare.sh here: the full-size
# architectures with random weights (they time like the real weights), the paint loop, the loading
# options that only a GPU exercises, and the geometry stage; each log goes to $OUT (at most 8 files
# come back). About 8 minutes at most: each step has its own limit, the most important run first.
#   SMOKE=1 bash bench/device/run.sh   the same steps on tiny models, on any machine with the venv
#   bash bench/device/run.sh pipeline geometry   only the steps that log to these files (a rerun)
set -uo pipefail
cd "$(dirname "$0")/../.."
only="$*"
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
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
  python3 -c "import importlib.metadata as m, os; print(*(f'{n} {m.version(n)}' for n in ('torch', 'diffusers',
    'transformers', 'tokenizers', 'huggingface_hub', 'accelerate', 'trimesh', 'pyrender')), sep='\n');
print('CPU cores', os.cpu_count())" | tee -a "$OUT/gpu.txt"
  full=(--random-weights --dtype fp16 --views 8 --size 768)
  sd15=("${full[@]}" --arch sd15-controlnet)
  headline=("${sd15[@]}" --steps 25 --inpaint)
  others=("${full[@]}" --arch sdxl-controlnet sd2-depth --steps 25 --inpaint)
  channels_last=("${sd15[@]}" --steps 25 --channels-last)
  compiled=("${sd15[@]}" --steps 25 --compile)
  offload=("${sd15[@]}" --steps 4 --cpu-offload)
  pipeline=(--model random:sd15-controlnet --views 8 --view-size 768 --steps 25)
  python=python3
else
  tiny=(--tiny --threads 2)
  headline=("${tiny[@]}" --arch sd15-controlnet --inpaint)
  others=("${tiny[@]}" --arch sdxl-controlnet sd2-depth --inpaint)
  channels_last=("${tiny[@]}" --arch sd15-controlnet --channels-last)
  compiled=("${tiny[@]}" --arch sd15-controlnet --steps 2)  # no --compile: inductor on a CPU takes minutes
  offload=("${tiny[@]}" --arch sd15-controlnet --steps 2 --cpu-offload)
  pipeline=(--tiny --views 4 --view-size 128 --steps 2)
  python=.venv/bin/python
fi
step() {  # log file, seconds, title, command...: appends to $OUT/<log file>.log
  local log=$OUT/$1.log seconds=$2 title=$3
  [ -n "$only" ] && [[ " $only " != *" $1 "* ]] && return 0
  shift 3
  echo "== $title" | tee -a "$log"
  local start=$SECONDS
  timeout "$seconds" "$@" 2>&1 | tee -a "$log"
  echo "== $title: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s" | tee -a "$log"
}
step diffusion 100 "SD1.5 + ControlNet, generate and inpaint" "$python" bench/bench_diffusion.py "${headline[@]}"
step pipeline 110 "paint loop, SD1.5 + ControlNet" "$python" bench/bench_pipeline.py "${pipeline[@]}"
step architectures 120 "SDXL + ControlNet and SD2-depth, generate and inpaint" \
  "$python" bench/bench_diffusion.py "${others[@]}"
step geometry 45 "geometry stage, every core" "$python" bench/bench_geometry.py --repeat 3
step geometry 45 "geometry stage, 2 cores" taskset -c 0,1 "$python" bench/bench_geometry.py --repeat 3
step options 30 "channels_last" "$python" bench/bench_diffusion.py "${channels_last[@]}"
step options 40 "cpu_offload" "$python" bench/bench_diffusion.py "${offload[@]}"
step options 120 "torch.compile" "$python" bench/bench_diffusion.py "${compiled[@]}"
