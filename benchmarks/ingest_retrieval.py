"""Ingest cost per document and retrieval latency at scale.

(a) Ingest a feed (the sample ``examples/news.xml`` by default) into a fresh
knowledge base and split each document's wall time into model time (the LLM
calls) and everything else (embedding, index, SQL), with its LLM calls and tokens.

(b) Retrieval latency of ``kb.search`` (no LLM) on stores of 10,000 and 100,000
facts built without the LLM (see ``benchmarks/synthstore.py``): p50 and p95 over
many queries, the query embedding timed apart from index + SQL.

    KBASE_CACHE=/tmp/kbcache python -m benchmarks.ingest_retrieval
    python -m benchmarks.ingest_retrieval --fake --sizes 200 --queries 20 --json OUT
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from benchmarks import report
from benchmarks.models import Models, load_models
from benchmarks.retrieval import retrieval_benchmark
from kbase.sources import read_source
from kbase.store.models import Document

DEFAULT_JSON = Path("benchmarks/results/ingest_retrieval.json")
DEFAULT_MARKDOWN = Path("docs/benchmarks.md")
ACCOUNTING = ("llm_calls", "prompt_tokens", "cached_tokens", "completion_tokens", "model_seconds")


def ingest_benchmark(models: Models, feed: str, strategy: str, folder: Path) -> dict[str, Any]:
    """Ingest ``feed`` in one call and account for every document."""
    docs = read_source(feed)
    ends: dict[int, float] = {}
    kb = models.open(folder, strategy)
    try:
        started = time.perf_counter()

        def progress(info: dict[str, Any]) -> None:
            # Called after every LLM call and every document: the first call that
            # reports n documents comes right after document n is stored.
            if info["documents"] not in ends:
                ends[info["documents"]] = time.perf_counter()
                if info["documents"]:
                    print(f"ingest: document {info['documents']}/{len(docs)}", file=sys.stderr)

        result = kb.ingest(docs, progress=progress)
        rows = kb.runtime.read(
            lambda s: [
                {"doc_id": d.doc_id, **{k: getattr(d, k) for k in ACCOUNTING}}
                for d in s.scalars(select(Document).order_by(Document.seq))
            ]
        )
    finally:
        kb.close()
    previous = started
    per_doc = []
    for n, (row, stored) in enumerate(zip(rows, result.stored, strict=True), 1):
        wall = ends[n] - previous
        previous = ends[n]
        per_doc.append(
            {
                **row,
                "model_seconds": round(row["model_seconds"], 3),
                "chunks": stored.chunks,
                "facts_created": stored.facts_created,
                "facts_rewritten": stored.facts_rewritten,
                "facts_retired": stored.facts_retired,
                "computed_tokens": row["prompt_tokens"]
                - row["cached_tokens"]
                + row["completion_tokens"],
                "wall_seconds": round(wall, 3),
                "other_seconds": round(wall - row["model_seconds"], 3),
            }
        )
    n = max(len(per_doc), 1)
    keys = [*ACCOUNTING, "computed_tokens", "wall_seconds", "other_seconds"]
    totals = {k: round(sum(d[k] for d in per_doc), 3) for k in keys}
    return {
        "feed": feed,
        "strategy": strategy,
        "documents": len(per_doc),
        "total": {**totals, "report_seconds": result.seconds},
        "per_document_mean": {k: round(totals[k] / n, 3) for k in keys},
        "per_document": per_doc,
    }


def _run_lines(run: dict[str, Any]) -> list[str]:
    m = run["models"]
    return [
        f"Machine: {report.describe(run['machine'])}.",
        f"Models: {m['embedder']}, {m['llm']} (loaded in {m['load_seconds']} s, not counted).",
        "",
        f"    {run['command']}",
        "",
    ]


def markdown(data: dict[str, Any]) -> str:
    """The ``docs/benchmarks.md`` section for one run."""
    out = ["## Ingest cost and retrieval latency"]
    ing = data.get("ingest")
    if ing:
        rows = [
            [
                d["doc_id"],
                d["chunks"],
                d["llm_calls"],
                d["prompt_tokens"],
                d["cached_tokens"],
                d["completion_tokens"],
                d["model_seconds"],
                d["other_seconds"],
                d["wall_seconds"],
            ]
            for d in ing["per_document"]
        ]
        for label, r in (("**mean**", ing["per_document_mean"]), ("**total**", ing["total"])):
            rows.append(
                [
                    label,
                    "",
                    r["llm_calls"],
                    r["prompt_tokens"],
                    r["cached_tokens"],
                    r["completion_tokens"],
                    r["model_seconds"],
                    r["other_seconds"],
                    r["wall_seconds"],
                ]
            )
        out += [
            "",
            f"### Ingest: `{ing['feed']}`, strategy `{ing['strategy']}`",
            "",
            *_run_lines(ing["run"]),
            "Model s is the sum of the LLM calls' time; other s is the rest of the "
            "document's wall time (embedding, vector index, SQL).",
            "",
            report.table(
                [
                    "document",
                    "chunks",
                    "LLM calls",
                    "prompt tok",
                    "cached tok",
                    "completion tok",
                    "model s",
                    "other s",
                    "wall s",
                ],
                rows,
            ),
        ]
    ret = data.get("retrieval")
    if ret:
        rows = []
        for s in ret["sizes"]:
            for label, r in (("now", s["search_now"]), ("as of", s["search_as_of"])):
                rows.append(
                    [
                        s["facts"],
                        s["vectors"],
                        label,
                        r["total"]["p50_ms"],
                        r["total"]["p95_ms"],
                        r["embed"]["p50_ms"],
                        r["embed"]["p95_ms"],
                        r["index_and_sql"]["p50_ms"],
                        r["index_and_sql"]["p95_ms"],
                    ]
                )
        sizes = [
            [
                s["facts"],
                s["index_build_seconds"],
                s["index_file_mib"],
                s["index_vectors_mib"],
                s["index_rss_mib"],
                s["database_mib"],
            ]
            for s in ret["sizes"]
        ]
        out += [
            "",
            f"### Retrieval: `kb.search`, k = {ret['k']}, {ret['queries']} queries per row",
            "",
            *_run_lines(ret["run"]),
            "Stores built without the LLM, a tenth of the fact versions closed; "
            "queries embedded one at a time, as `kb search` does. Latencies in ms. "
            f"Fact vectors ({ret['mode']}): the embedder's where embedding them fit the "
            f"budget at the measured rate ({ret.get('embed_rate_per_s', 'n/a')} texts/s), "
            "else random unit vectors; the exact (flat) index costs the same either way.",
            "",
            report.table(
                [
                    "facts",
                    "fact vectors",
                    "asked",
                    "total p50",
                    "total p95",
                    "embed p50",
                    "embed p95",
                    "index+SQL p50",
                    "index+SQL p95",
                ],
                rows,
            ),
            "",
            report.table(
                [
                    "facts",
                    "index build s (from cached vectors)",
                    "index file MiB",
                    "vectors MiB (n x d x 4 B)",
                    "RSS growth on loading it, MiB",
                    "database MiB",
                ],
                sizes,
            ),
            "",
            f"Peak RSS of the process: {ret['peak_rss_mib']} MiB.",
        ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and write the JSON and the Markdown section."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.ingest_retrieval", description=__doc__)
    p.add_argument("--docs", default="examples/news.xml", help="feed, file or folder to ingest")
    p.add_argument("--strategy", default="kbase")
    p.add_argument("--sizes", default="10000,100000", help="store sizes in facts")
    p.add_argument("--queries", type=int, default=200)
    p.add_argument(
        "--vectors",
        choices=("auto", "real", "random"),
        default="auto",
        help="fact vectors: the embedder's, random, or the embedder's if affordable",
    )
    p.add_argument(
        "--embed-budget",
        type=float,
        default=300.0,
        help="seconds of fact embedding that --vectors auto allows",
    )
    p.add_argument("--only", choices=("ingest", "retrieval"))
    p.add_argument("--fake", action="store_true", help="fake models (plumbing only)")
    p.add_argument("--json", type=Path, help=f"default {DEFAULT_JSON} (none with --fake)")
    p.add_argument("--markdown", type=Path, help=f"default {DEFAULT_MARKDOWN} (none with --fake)")
    args = p.parse_args(argv)
    json_path = args.json or (None if args.fake else DEFAULT_JSON)
    md_path = args.markdown or (None if args.fake else DEFAULT_MARKDOWN)
    run: dict[str, Any] = {"machine": report.machine(), "command": report.command_line()}
    models = load_models(fake=args.fake, llm=args.only != "retrieval")
    run["models"] = {
        "embedder": models.embedder_name,
        "llm": models.llm_name,
        "load_seconds": models.load_seconds,
        "fake": args.fake,
    }
    data: dict[str, Any] = {}
    if args.only and json_path and json_path.exists():
        data = json.loads(json_path.read_text())  # --only keeps the other part's last results
    try:
        with tempfile.TemporaryDirectory(prefix="kbase-bench-") as tmp:
            if args.only != "retrieval":
                data["ingest"] = {
                    "run": run,
                    **ingest_benchmark(models, args.docs, args.strategy, Path(tmp) / "ingest"),
                }
                print(f"ingest: {data['ingest']['per_document_mean']}", flush=True)
            if args.only != "ingest":
                sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
                data["retrieval"] = {
                    "run": run,
                    **retrieval_benchmark(
                        models, sizes, args.queries, args.vectors, args.embed_budget, Path(tmp)
                    ),
                }
    finally:
        models.close()
    run["machine"]["load_average_1m_at_end"] = report.load_average()
    text = markdown(data)
    print(text)
    if json_path:
        report.write_json(json_path, data)
    if md_path:
        report.update_section(md_path, "ingest_retrieval", text)


if __name__ == "__main__":
    main()
