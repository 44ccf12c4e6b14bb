"""Extraction with and without the JSON-schema grammar (issue 18: keep the grammar
only where it earns its cost).

One process, one embedded model, the realistic stream's articles: each article's
extraction request is answered twice, constrained by the facts schema (llama.cpp
compiles it into a grammar) and unconstrained, alternating which goes first. For
each: wall seconds of the call, generated tokens, whether the answer parses as the
pipeline parses it (``clean_facts(parse_json(...))``), and, where the first answer
does not, whether the pipeline's retry (its second attempt) does. Both runs start
from the shared prefix already computed, so the calls compare warm.

    python -m benchmarks.grammar                 # 24 articles
    python -m benchmarks.grammar --articles 8

The result goes into docs/benchmarks.md (its ``grammar`` section) and
benchmarks/results/grammar.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.first_document import stream
from benchmarks.report import (
    command_line,
    describe,
    load_average,
    machine,
    table,
    update_section,
    write_json,
)
from kbase import prompts
from kbase.llm import get_backend
from kbase.llm.base import LLMBackend, LLMRequest
from kbase.llm.output import parse_json
from kbase.pipeline.extract import ATTEMPTS, clean_facts

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
RESULT = ROOT / "benchmarks" / "results" / "grammar.json"
MODES = ("grammar", "free")


def _request(text: str, title: str | None, published: Any, attempt: int, mode: str) -> LLMRequest:
    request = prompts.extract_request(text, title=title, published=published, attempt=attempt)
    return request if mode == "grammar" else dataclasses.replace(request, schema=None)


def answer(backend: LLMBackend, doc: Any, mode: str) -> dict[str, Any]:
    """One article's extraction in ``mode``, with the pipeline's retries."""
    calls = []
    for attempt in range(ATTEMPTS):
        started = time.perf_counter()
        response = backend.generate(_request(doc.text, doc.title, doc.published, attempt, mode))
        facts = clean_facts(parse_json(response.text))
        calls.append(
            {
                "seconds": time.perf_counter() - started,
                "completion_tokens": response.completion_tokens,
                "parsed": facts is not None,
                "facts": facts,
            }
        )
        if facts is not None:
            break
    return {"calls": calls, "parsed": calls[-1]["parsed"]}


def run(count: int) -> dict[str, Any]:
    info = machine()
    docs = stream()[:count]
    backend = get_backend("llama-cpp")
    rows = []
    try:
        answer(backend, docs[-1], "grammar")  # untimed: the shared prefix computed
        for i, doc in enumerate(docs):
            order = MODES if i % 2 == 0 else MODES[::-1]
            row: dict[str, Any] = {"doc_id": doc.doc_id}
            for mode in order:
                row[mode] = answer(backend, doc, mode)
            first = {mode: row[mode]["calls"][0] for mode in MODES}
            row["same_facts"] = first["grammar"]["facts"] == first["free"]["facts"]
            rows.append(row)
            print(doc.doc_id, {m: (c["parsed"], round(c["seconds"], 2)) for m, c in first.items()})
    finally:
        backend.close()
    info["load_average_1m_at_end"] = load_average()
    summary = {}
    for mode in MODES:
        firsts = [r[mode]["calls"][0] for r in rows]
        summary[mode] = {
            "first_answer_parse_failures": sum(not c["parsed"] for c in firsts),
            "failures_after_retry": sum(not r[mode]["parsed"] for r in rows),
            "median_seconds": statistics.median(c["seconds"] for c in firsts),
            "total_seconds": sum(c["seconds"] for r in rows for c in r[mode]["calls"]),
            "median_tokens": statistics.median(c["completion_tokens"] for c in firsts),
            "seconds_per_token": sum(c["seconds"] for c in firsts)
            / max(1, sum(c["completion_tokens"] for c in firsts)),
        }
    return {
        "machine": info,
        "articles": len(rows),
        "rows": rows,
        "summary": summary,
        "same_facts": sum(r["same_facts"] for r in rows),
        "time_ratio": summary["grammar"]["total_seconds"] / summary["free"]["total_seconds"],
    }


def markdown(result: dict[str, Any], command: str) -> str:
    n = result["articles"]
    rows = [
        [
            mode,
            f"{s['first_answer_parse_failures']} of {n}",
            f"{s['failures_after_retry']} of {n}",
            f"{s['median_seconds']:.2f}",
            f"{s['median_tokens']:.0f}",
            f"{1000 * s['seconds_per_token']:.0f}",
            f"{s['total_seconds']:.1f}",
        ]
        for mode, s in result["summary"].items()
    ]
    headers = [
        "decoding",
        "first answer does not parse",
        "still not after the retry",
        "median s per call",
        "median tokens",
        "ms per token",
        "total s (retries included)",
    ]
    return "\n\n".join(
        [
            f"Machine: {describe(result['machine'])}",
            f"    {command}",
            table(headers, rows),
            f"Same facts with and without the grammar: {result['same_facts']} of {n} articles; "
            f"time with the grammar / without: {result['time_ratio']:.2f}.",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    """Run, write the JSON and the report section."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.grammar", description=__doc__)
    p.add_argument("--articles", type=int, default=24)
    p.add_argument("--json", type=Path, default=RESULT)
    p.add_argument("--markdown", type=Path, default=DOC)
    args = p.parse_args(argv)
    result = run(args.articles)
    write_json(args.json, result)
    body = markdown(result, command_line())
    update_section(args.markdown, "grammar", body)
    print(body)


if __name__ == "__main__":
    main()
