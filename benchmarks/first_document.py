"""The first document of a process against a warm one, with and without the saved
state of the shared prompt prefix (issue 18: at most 1.5x).

One run: a knowledge base is built from the realistic stream's first document (which
saves the shared prefix's model state in its ``model-states`` folder). Then, for each
of ``--articles`` later short articles, three new processes open a copy of it and
ingest the article, timed in wall seconds and in the process's CPU seconds:

- ``computed``: the copy without ``model-states``, so the first call computes the
  ~1,000-token shared prefix, as every process did before;
- ``from disk``: the copy with it, so the first call loads the prefix's state;
- warm: the copy with it, after ingesting and forgetting (``allow_again``) another
  short article, so the prefix is in memory but the article is not, and the store is
  again the copy.

The ratio first/warm, for the same article on the same store, is the figure.

    python -m benchmarks.first_document               # 3 articles
    python -m benchmarks.first_document --articles 1

The result goes into docs/benchmarks.md (its ``first_document`` section) and
benchmarks/results/first_document.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.qa import load_stream
from benchmarks.report import (
    command_line,
    describe,
    load_average,
    machine,
    table,
    update_section,
    write_json,
)
from kbase.kb import KnowledgeBase
from kbase.llm.prefix_states import FOLDER_NAME
from kbase.sources import SourceDocument

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data" / "realistic"
DOC = ROOT / "docs" / "benchmarks.md"
RESULT = ROOT / "benchmarks" / "results" / "first_document.json"
VARIANTS = ("computed", "from disk")

#: One process: optionally ingest and forget a warm-up article, then the article, timed.
CHILD = """
import json, resource, sys, time
from benchmarks.first_document import article
from kbase.kb import KnowledgeBase

def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

folder, warm_up, doc = sys.argv[1], sys.argv[2], article(sys.argv[3])
kb = KnowledgeBase.open(folder, create=False)
if warm_up != "-":
    kb.ingest([article(warm_up)])
    kb.forget([warm_up], allow_again=True)
wall, used = time.perf_counter(), cpu()
report = kb.ingest([doc])
kb.close()
print(json.dumps({
    "wall_s": time.perf_counter() - wall,
    "cpu_s": cpu() - used,
    "model_s": report.model_seconds,
    "prompt_tokens": report.prompt_tokens,
    "cached_tokens": report.cached_tokens,
    "model_calls": report.model_calls,
}))
"""


def stream() -> list[SourceDocument]:
    docs, _ = load_stream(DATA / "documents.jsonl", DATA / "questions.jsonl")
    return docs


def article(doc_id: str) -> SourceDocument:
    """The realistic stream's document ``doc_id``."""
    return next(d for d in stream() if d.doc_id == doc_id)


def short_articles(count: int) -> list[SourceDocument]:
    """``count`` of the shortest articles after the first, spread over the stream."""
    later = sorted(stream()[1:], key=lambda d: len(d.text))[: 4 * count]
    return sorted(later, key=lambda d: d.published or 0)[:: max(1, len(later) // count)][:count]


def child(folder: Path, doc_id: str, warm_up: str = "-") -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), warm_up, doc_id],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _copy(base: Path, folder: Path, *, states: bool) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(base, folder)
    if not states:
        shutil.rmtree(folder / FOLDER_NAME)
    return folder


def run(count: int) -> dict[str, Any]:
    info = machine()
    rows: list[dict[str, Any]] = []
    docs = short_articles(count)
    with tempfile.TemporaryDirectory(prefix="kbase-first-") as tmp:
        base = Path(tmp) / "base"
        with KnowledgeBase.open(base) as kb:
            kb.ingest(stream()[:1])
        states = sorted(p.name for p in (base / FOLDER_NAME).glob("*"))
        copy = Path(tmp) / "copy"
        # Each article's warm-up is the next one (the last's is the first).
        for doc, warm_up in list(zip(docs, docs[1:] + docs[:1], strict=True))[:count]:
            warm = child(_copy(base, copy, states=True), doc.doc_id, warm_up.doc_id)
            for variant in VARIANTS:
                first = child(_copy(base, copy, states=variant == "from disk"), doc.doc_id)
                rows.append(
                    {
                        "doc_id": doc.doc_id,
                        "words": len(doc.text.split()),
                        "variant": variant,
                        "warm_up": warm_up.doc_id,
                        "first": first,
                        "warm": warm,
                        "wall_ratio": first["wall_s"] / warm["wall_s"],
                        "cpu_ratio": first["cpu_s"] / warm["cpu_s"],
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    info["load_average_1m_at_end"] = load_average()
    summary = {
        variant: {
            "median_wall_ratio": statistics.median(
                r["wall_ratio"] for r in rows if r["variant"] == variant
            ),
            "median_cpu_ratio": statistics.median(
                r["cpu_ratio"] for r in rows if r["variant"] == variant
            ),
            "median_warm_wall_s": statistics.median(
                r["warm"]["wall_s"] for r in rows if r["variant"] == variant
            ),
        }
        for variant in VARIANTS
    }
    return {"machine": info, "saved_states": states, "rows": rows, "summary": summary}


def markdown(result: dict[str, Any], command: str) -> str:
    rows = [
        [
            r["doc_id"],
            r["words"],
            r["variant"],
            f"{r['first']['wall_s']:.2f} / {r['first']['cpu_s']:.2f}",
            f"{r['warm']['wall_s']:.2f} / {r['warm']['cpu_s']:.2f}",
            f"{r['first']['cached_tokens']} of {r['first']['prompt_tokens']}",
            f"{r['wall_ratio']:.2f}",
            f"{r['cpu_ratio']:.2f}",
        ]
        for r in result["rows"]
    ]
    headers = [
        "article",
        "words",
        "shared prefix",
        "first: wall / CPU s",
        "warm: wall / CPU s",
        "first: cached prompt tokens",
        "first/warm wall",
        "first/warm CPU",
    ]
    summary = [
        [
            variant,
            f"{s['median_wall_ratio']:.2f}",
            f"{s['median_cpu_ratio']:.2f}",
            f"{s['median_warm_wall_s']:.2f}",
        ]
        for variant, s in result["summary"].items()
    ]
    return "\n\n".join(
        [
            f"Machine: {describe(result['machine'])}",
            f"    {command}",
            table(headers, rows),
            table(
                ["shared prefix", "median first/warm wall", "median first/warm CPU", "warm s"],
                summary,
            ),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    """Run, write the JSON and the report section."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.first_document", description=__doc__)
    p.add_argument("--articles", type=int, default=3)
    p.add_argument("--json", type=Path, default=RESULT)
    p.add_argument("--markdown", type=Path, default=DOC)
    args = p.parse_args(argv)
    result = run(args.articles)
    write_json(args.json, result)
    body = markdown(result, command_line())
    update_section(args.markdown, "first_document", body)
    print(body)


if __name__ == "__main__":
    main()
