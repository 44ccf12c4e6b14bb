"""How soon a new ``kb ask`` process reaches the model: from launching the command to
the moment the embedded model (loaded) receives the answer prompt.

The store holds one fact, so the question retrieves it and the model is asked. It
is created once with the default settings (the ONNX embedder, the embedded
llama.cpp model); its one document is ingested through the fake-world model, since
only the question's path is measured. Each timed run is a new process that runs the
``kb`` command; a hook on the embedded backend's ``generate`` prints the wall-clock
time at its entry and ends the process, so what is timed is interpreter start-up,
imports, opening the store and the index, embedding the question, retrieval and
loading the model, not decoding. The same runs are then repeated whole (the answer
generated, each run another wording of the question, since a recorded answer is
replayed without the model) for the full command's wall time.

    python -m benchmarks.ask_start --runs 5

The result goes into docs/benchmarks.md (its ``ask_start`` section) and
benchmarks/results/ask_start.json.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.report import (
    command_line,
    describe,
    load_average,
    machine,
    table,
    update_section,
    write_json,
)

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
RESULT = ROOT / "benchmarks" / "results" / "ask_start.json"
QUESTION = "Who is the chief executive of Acme Robotics?"
#: The whole command asks each run another question: an answer already recorded for a
#: question is replayed without the model.
WORDINGS = (
    "Who runs Acme Robotics?",
    "Who leads Acme Robotics as chief executive?",
    "Who is Acme Robotics' chief executive?",
    "Which person is the chief executive of Acme Robotics?",
    "Name the chief executive of Acme Robotics.",
    "Who heads Acme Robotics?",
    "Who is in charge of Acme Robotics?",
    "Who is the boss of Acme Robotics?",
)

#: ``kb ask`` in this process, stopped where the model receives its prompt.
REACH = """
import sys, time
from kbase.llm import llama_cpp_backend

def reached(self, request):
    print(f"REACHED {time.time()!r}", flush=True)
    raise SystemExit(0)

llama_cpp_backend.LlamaCppBackend.generate = reached
import cli
sys.argv = ["kb", *sys.argv[1:]]
cli.main()
"""


def _store(folder: Path) -> Path:
    """A knowledge base with the default settings and one fact."""
    from kbase.kb import KnowledgeBase
    from kbase.llm.fake import world_llm
    from kbase.sources.base import SourceDocument

    path = folder / "kb"
    llm = world_llm()
    with KnowledgeBase.open(path, backend=lambda: llm) as kb:
        kb.ingest(
            [
                SourceDocument(
                    doc_id="acme",
                    text="The chief executive of Acme Robotics is Alice Chen.",
                    source="benchmark",
                    title="Acme names Alice Chen",
                )
            ]
        )
    return path


def reach(store: Path) -> float:
    """Seconds from launching ``kb ask`` to the model receiving its prompt."""
    started = time.time()
    done = subprocess.run(
        [sys.executable, "-c", REACH, "--kb", str(store), "ask", QUESTION],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    stamps = [line for line in done.stdout.splitlines() if line.startswith("REACHED ")]
    if not stamps:
        raise RuntimeError(f"kb ask never reached the model: {done.stderr.strip()[-500:]}")
    return float(stamps[0].split()[1]) - started


def whole(store: Path, question: str) -> float:
    """Wall seconds of the whole ``kb ask`` command, the answer generated."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import cli; cli.main()", "--kb", str(store), "ask", question],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return time.perf_counter() - started


def run(runs: int) -> dict[str, Any]:
    info = machine()
    with tempfile.TemporaryDirectory() as folder:
        store = _store(Path(folder))
        reach(store)  # untimed: the model file and the libraries into the page cache
        reached = [reach(store) for _ in range(runs)]
        answered = [whole(store, WORDINGS[n % len(WORDINGS)]) for n in range(runs)]
    info["load_average_1m_at_end"] = load_average()
    return {
        "machine": info,
        "runs": runs,
        "question": QUESTION,
        "reach_s": reached,
        "reach_median_s": statistics.median(reached),
        "whole_s": answered,
        "whole_median_s": statistics.median(answered),
    }


def markdown(result: dict[str, Any], command: str) -> str:
    rows = [
        [
            "reaches the model",
            result["reach_median_s"],
            f"{min(result['reach_s']):.2f}-{max(result['reach_s']):.2f}",
        ],
        [
            "whole command (answer generated)",
            result["whole_median_s"],
            f"{min(result['whole_s']):.2f}-{max(result['whole_s']):.2f}",
        ],
    ]
    return "\n\n".join(
        [
            "## `kb ask` in a new process (issue 18)",
            f"Machine: {describe(result['machine'])}.",
            f"    {command}",
            (
                f"A store with the default settings (ONNX MiniLM, the embedded "
                f"Qwen2.5-Coder-1.5B in llama.cpp) and one fact; {result['runs']} new "
                f'`kb ask` processes after one untimed run. "Reaches the model" is the '
                f"time from launching the command to the loaded model receiving the answer "
                f"prompt (a hook on the backend's `generate` stops the process there)."
            ),
            table(["`kb ask`", "median s", "min-max s"], rows),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed new processes")
    parser.add_argument("--json", type=Path, default=RESULT, help="where the JSON goes")
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/benchmarks.md")
    args = parser.parse_args(argv)
    result = run(args.runs)
    write_json(args.json, result)
    text = markdown(result, command_line())
    print(text)
    if not args.no_docs:
        update_section(DOC, "ask_start", text)


if __name__ == "__main__":
    main()
