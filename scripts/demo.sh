#!/usr/bin/env bash
# Installs kbase, then runs the main job on the embedded default (MiniLM + Qwen2.5-Coder-1.5B
# in llama.cpp, on the CPU): ingest the sample feed, ask, forget the article that changed
# the answer, ask again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
KB_DIR=${KB_DIR:-$(mktemp -d)/demo-kb}
kb() { .venv/bin/kb --kb "$KB_DIR" "$@"; }
question="Who is the chief executive of Acme Robotics?"
echo "== kb ingest examples/news.xml   (knowledge base: $KB_DIR)"
kb ingest examples/news.xml
echo; echo "== kb ask \"$question\""
kb ask "$question"
echo; echo "== kb forget acme-alice-ceo"
kb forget acme-alice-ceo
echo; echo "== kb ask \"$question\""
kb ask "$question"
