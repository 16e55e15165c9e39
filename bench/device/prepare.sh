#!/usr/bin/env bash
# Run HERE (a CPU machine with the project's .venv) before a session's GPU run: fetch what the
# device image lacks. Wheels of this venv's own versions go to .whl/ (CPython 3.12, x86-64, as the
# device runs), the EGL packages to .gl/; both are git-ignored and travel with `carry`.
# Then, through the device tool: run(command="bash bench/device/run.sh", carry=[".whl", ".gl"], timeout_s=590)
set -euo pipefail
cd "$(dirname "$0")/../.."
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")" && touch "$exclude"
for folder in .whl .gl; do
  grep -qx "/$folder/" "$exclude" || echo "/$folder/" >> "$exclude"
done
rm -rf .whl .gl && mkdir -p .whl .gl
# the device image has torch, huggingface_hub, numpy, scipy, pillow, opencv, accelerate, safetensors,
# msgpack, rich, filelock and networkx (see the device library's KINDS.md); these it lacks, and
# transformers and tokenizers travel at this venv's versions, which the tests ran with (run.sh logs
# every version it runs with)
packages=(diffusers transformers tokenizers trimesh pyrender PyOpenGL pyglet freetype-py xatlas pyzmq mapbox_earcut
          plyfile)
for name in "${packages[@]}"; do
  version=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('$name'))")
  if ! python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "$name==$version" 2>/dev/null; then
    python3 -m pip wheel -q --no-deps -w .whl "$name==$version"  # pure Python with no wheel (PyOpenGL 3.1.0)
  fi
done
o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
mkdir -p /tmp/amd64/partial
apt-get $o update -qq
(cd .gl && apt-get $o download -qq libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)  # NVIDIA's EGL is there
du -sh .whl .gl
