#!/usr/bin/env bash
# Installs kbase and everything its embedded default needs into ./.venv.
# Idempotent: a second run reuses the venv and pip's wheel cache (seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
# torch first, pinned, so nothing pulls a multi-GB CUDA build (see docs/models.md).
.venv/bin/python -c "import torch" 2>/dev/null || "${PIP[@]}" torch==2.13.0
# llama-cpp-python compiles from source here; skip what kbase does not use (halves the build).
if ! .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
  CMAKE_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF" \
    "${PIP[@]}" "llama-cpp-python[server]==0.3.36"
fi
"${PIP[@]}" -e ".[local,postgres,dev]"
# The minilm-onnx embedder's graph, exported once from the packaged weights (torch is
# needed only here), checked against sentence-transformers, cached (docs/models.md).
.venv/bin/python -m kbase.embed.onnx_export
