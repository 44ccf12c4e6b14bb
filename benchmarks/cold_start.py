"""Embedder start-up: what a new ``kb search`` process waits for before its query
has a vector, with the torch embedder (``minilm``) and the ONNX one (``minilm-onnx``).

One run measures, for each embedder:

- cold: the wall time of a new ``python`` process that imports the embedder, loads
  it and embeds one query, then exits (interpreter start-up included), ``--runs``
  times, the two embedders alternating, after one untimed run each (so both find
  their files in the page cache); median, min and max, and the ratio of medians;
- warm: in one process, after a warm-up, the median and p90 time to embed one
  query (``--warm`` queries, each a different text), and texts per second for one
  call on 256 fact-sized texts;
- agreement: the least cosine between the two embedders' vectors on the
  conformance set of ``tests/test_embedders.py``;
- the whole command: ``kb search QUERY`` as a new process on an empty store
  created with each embedder (CLI, store and index opened, the query embedded).

    python -m benchmarks.cold_start                 # 7 cold runs each, 200 warm queries
    python -m benchmarks.cold_start --runs 3 --no-docs

The result goes into docs/benchmarks.md (its ``cold_start`` section) and
benchmarks/results/cold_start.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

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
RESULT = ROOT / "benchmarks" / "results" / "cold_start.json"
EMBEDDERS = ("minilm", "minilm-onnx")
QUERY = "Who is the chief executive of Acme Robotics?"

#: A new process: import, load, embed one query, exit.
COLD = """
import sys
from kbase.embed import get_embedder
vector = get_embedder(sys.argv[1]).embed([sys.argv[2]])
assert vector.shape == (1, 384)
"""

#: One process: per-query times after a warm-up, a batch's rate, the conformance vectors.
WARM = """
import json, sys, time
import numpy as np
from kbase.embed import get_embedder
from tests.test_embedders import CONFORMANCE
name, count, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
embedder = get_embedder(name)
queries = [f"Who was the chief executive of company {i} in {1990 + i % 30}?" for i in range(count)]
for query in queries[:20]:
    embedder.embed([query])
times = []
for query in queries:
    started = time.perf_counter()
    embedder.embed([query])
    times.append(time.perf_counter() - started)
facts = [f"Company {i} named person {i * 7 % 101} its chief financial officer in {1990 + i % 30}."
         for i in range(256)]
started = time.perf_counter()
embedder.embed(facts)
batch = time.perf_counter() - started
np.save(out, embedder.embed(CONFORMANCE))
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "sentence_transformers"})
print(json.dumps({"times": times, "batch_s": batch, "batch": len(facts), "heavy": heavy}))
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )


def cold(name: str) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, all threads) of one new process that
    embeds one query with ``name``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    _python(COLD, name, QUERY)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def kb(*args: str) -> float:
    """Wall seconds of one ``kb`` command in a new process."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import cli; cli.main()", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return time.perf_counter() - started


def bare() -> float:
    """Wall seconds of a new process that imports ``kbase.embed`` only (the floor)."""
    started = time.perf_counter()
    _python("import kbase.embed")
    return time.perf_counter() - started


def warm(name: str, count: int, folder: Path) -> tuple[dict[str, Any], Any]:
    out = folder / f"{name}.npy"
    done = _python(WARM, name, str(count), str(out))
    return json.loads(done.stdout.strip().splitlines()[-1]), np.load(out)


def run(runs: int, count: int) -> dict[str, Any]:
    info = machine()
    for name in EMBEDDERS:  # untimed: files into the page cache, the ONNX export made
        cold(name)
    walls: dict[str, list[float]] = {name: [] for name in EMBEDDERS}
    cpus: dict[str, list[float]] = {name: [] for name in EMBEDDERS}
    searches: dict[str, list[float]] = {name: [] for name in EMBEDDERS}
    floor = []
    rows: dict[str, dict[str, Any]] = {}
    vectors = {}
    with tempfile.TemporaryDirectory() as folder:
        stores = {name: str(Path(folder) / f"kb-{name}") for name in EMBEDDERS}
        for name in EMBEDDERS:
            kb("--kb", stores[name], "init", "--embedder", name)
            kb("--kb", stores[name], "search", QUERY)  # untimed, as above
        for _ in range(runs):
            for name in EMBEDDERS:
                wall, cpu = cold(name)
                walls[name].append(wall)
                cpus[name].append(cpu)
                searches[name].append(kb("--kb", stores[name], "search", QUERY))
            floor.append(bare())
        for name in EMBEDDERS:
            measured, vectors[name] = warm(name, count, Path(folder))
            times = sorted(measured["times"])
            rows[name] = {
                "cold_s": walls[name],
                "cold_median_s": statistics.median(walls[name]),
                "cold_cpu_s": cpus[name],
                "cold_cpu_median_s": statistics.median(cpus[name]),
                "kb_search_s": searches[name],
                "kb_search_median_s": statistics.median(searches[name]),
                "warm_median_ms": 1000 * statistics.median(times),
                "warm_p90_ms": 1000 * times[int(0.9 * (len(times) - 1))],
                "batch_texts_per_s": measured["batch"] / measured["batch_s"],
                "imports_torch": bool(measured["heavy"]),
            }
    cosines = (vectors["minilm"] * vectors["minilm-onnx"]).sum(axis=1)
    info["load_average_1m_at_end"] = load_average()
    return {
        "machine": info,
        "runs": runs,
        "warm_queries": count,
        "query": QUERY,
        "bare_import_median_s": statistics.median(floor),
        "embedders": rows,
        "cold_ratio": rows["minilm"]["cold_median_s"] / rows["minilm-onnx"]["cold_median_s"],
        "kb_search_ratio": rows["minilm"]["kb_search_median_s"]
        / rows["minilm-onnx"]["kb_search_median_s"],
        "warm_ratio": rows["minilm"]["warm_median_ms"] / rows["minilm-onnx"]["warm_median_ms"],
        "conformance_texts": len(cosines),
        "least_cosine": float(cosines.min()),
        "max_abs_difference": float(np.abs(vectors["minilm"] - vectors["minilm-onnx"]).max()),
    }


def markdown(result: dict[str, Any], command: str) -> str:
    rows = []
    for name, row in result["embedders"].items():
        runtime = "sentence-transformers (torch)" if name == "minilm" else "onnxruntime"
        rows.append(
            [
                f"`{name}`",
                runtime,
                row["cold_median_s"],
                f"{min(row['cold_s']):.2f}-{max(row['cold_s']):.2f}",
                row["cold_cpu_median_s"],
                row["kb_search_median_s"],
                row["warm_median_ms"],
                row["warm_p90_ms"],
                round(row["batch_texts_per_s"]),
                "yes" if row["imports_torch"] else "no",
            ]
        )
    headers = [
        "embedder",
        "runtime",
        "new process s (median)",
        "min-max s",
        "its CPU s (median)",
        "`kb search` s (median)",
        "warm query ms (median)",
        "warm p90 ms",
        "texts/s (256 in one call)",
        "imports torch",
    ]
    return "\n\n".join(
        [
            "## Embedder start-up: torch against onnxruntime",
            f"Machine: {describe(result['machine'])}.",
            f"    {command}",
            (
                f"A new process imports the embedder, loads all-MiniLM-L6-v2 and embeds one "
                f"query, then exits: {result['runs']} runs each, alternating, after one "
                f"untimed run each; a process that only imports `kbase.embed` takes "
                f"{result['bare_import_median_s']:.2f} s. CPU s is the process's user and "
                f"system time, all threads: less sensitive than wall time to a busy machine. "
                f"`kb search` is the whole command "
                f"in a new process, on an empty store created with that embedder (the same "
                f"runs). Warm: {result['warm_queries']} "
                f"queries one at a time in one process, after 20 to warm up."
            ),
            table(headers, rows),
            (
                f"A new process gets its query vector {result['cold_ratio']:.1f}x sooner on "
                f"onnxruntime, `kb search` answers {result['kb_search_ratio']:.1f}x sooner, "
                f"and a warm query is {result['warm_ratio']:.1f}x faster. Same vectors: "
                f"least cosine {result['least_cosine']:.7f}, largest coordinate difference "
                f"{result['max_abs_difference']:.1e}, over the {result['conformance_texts']} "
                f"texts of the conformance set (tests/test_embedders.py); both embedders "
                f"share the model id `all-MiniLM-L6-v2` and so the embedding cache "
                f"(docs/models.md)."
            ),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="timed new processes per embedder")
    parser.add_argument("--warm", type=int, default=200, help="warm queries per embedder")
    parser.add_argument("--json", type=Path, default=RESULT, help="where the JSON goes")
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/benchmarks.md")
    args = parser.parse_args(argv)
    result = run(args.runs, args.warm)
    write_json(args.json, result)
    command = command_line()
    text = markdown(result, command)
    print(text)
    if not args.no_docs:
        update_section(DOC, "cold_start", text)


if __name__ == "__main__":
    main()
