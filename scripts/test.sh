#!/usr/bin/env bash
# Installs kbase with its test dependencies, lints, type-checks, and runs the tests:
# first the default tier (fakes, the real embedder and embedded LLM on small cases,
# SQLite and the local PostgreSQL), then while time allows the slow tier
# (KBASE_SLOW_BUDGET seconds, default 15 min) and the PostgreSQL tier: the default
# tier on the fakes again, every knowledge base in PostgreSQL (KBASE_PG_BUDGET
# seconds, default 15 min), and the vLLM tier: kbase on vLLM's engine, on the CPU
# (scripts/test-vllm.sh; KBASE_VLLM_BUDGET seconds, default 20 min, its install
# included), so a fresh CI run fits in 90 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/install-browser.sh  # chromium for the web page's test (skipped without it)
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest -m "not slow" "$@"

# Runs a tier under a time budget: stopping at the budget is not a failure.
budgeted() {
  local name=$1 budget=$2
  shift 2
  set +e
  timeout --signal=INT "$budget" "$@"
  local status=$?
  set -e
  case $status in
    0|5) ;;  # passed, or no tests selected
    124|130) echo "$name tier stopped after ${budget}s (time budget); default tier passed" ;;
    *) exit $status ;;
  esac
}
budgeted slow "${KBASE_SLOW_BUDGET:-900}" .venv/bin/python -m pytest -m slow "$@"
budgeted PostgreSQL "${KBASE_PG_BUDGET:-900}" \
  env KBASE_TEST_DATABASE=postgres .venv/bin/python -m pytest -m "not slow and not real" "$@"
budgeted vLLM "${KBASE_VLLM_BUDGET:-1200}" bash scripts/test-vllm.sh "$@"
