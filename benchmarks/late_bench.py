"""Cost of a late article: inserting a document published before others already
stored, against how late it is, beside a rebuild of the store in publication order.

One process builds a store from a dated stream (the fake models by default), then,
from a copy of it each time, ingests one more article dated at several positions of
the stream: documents replayed, model calls, wall time, and the ratio to a fresh
build of the whole stream with the article in its place. Two kinds of late article:
an *isolated* one, whose words no other article uses (no later document could have
seen its facts: nothing is replayed), and a *contested* one about a company later
articles write about (the later documents from the first that could see its facts
are replayed, from the record where their requests are unchanged).

    python -m benchmarks.late_bench --sizes 1000 [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.forget_bench import open_kb, stream
from kbase.sources.base import SourceDocument

POSITIONS = (0.0, 0.1, 0.5, 0.9, 0.99)


def cpu_seconds_to_build(folder: Path, docs: list[SourceDocument], real: bool) -> float:
    """CPU time of this process to build a store from ``docs`` (CPU time, not wall:
    the machine is shared, and wall time would measure the neighbours)."""
    started = time.process_time()
    with open_kb(folder, real) as kb:
        kb.ingest(docs)
    return time.process_time() - started


def late_articles(docs: list[SourceDocument], at: int) -> dict[str, SourceDocument]:
    """The two kinds of late article, dated as ``docs[at]`` (which their ids put
    them after)."""
    when = docs[at].published
    assert when is not None
    company = docs[at].title.removeprefix("News about ") if docs[at].title else "Company 0"
    return {
        "isolated": SourceDocument(
            "late-isolated", "Zebra Kites sells striped kites.", "bench", "Zebra", published=when
        ),
        "contested": SourceDocument(
            "late-contested",
            f"The chief executive of {company} is Zed Quinn. The city of {company} is Nowhere.",
            "bench",
            f"News about {company}",
            published=when,
        ),
    }


def measure(n: int, real: bool, positions: tuple[float, ...]) -> list[dict[str, Any]]:
    docs = stream(n)
    base = Path(tempfile.mkdtemp(prefix="kbase-late-"))
    try:
        build_seconds = cpu_seconds_to_build(base / "built", docs, real)
        # A rebuild costs about the same wherever the article goes: measure one.
        middle = late_articles(docs, n // 2)["contested"]
        rebuild = cpu_seconds_to_build(base / "rebuild", [*docs, middle], real)
        rows = []
        for p in positions:
            at = min(int(p * n), n - 1)
            for kind, late in late_articles(docs, at).items():
                copy = base / f"copy-{kind}-{p}"
                shutil.copytree(base / "built", copy)
                started = time.process_time()
                with open_kb(copy, real) as kb:
                    result = kb.ingest([late])
                seconds = time.process_time() - started
                placed = result.stored[0]
                rows.append(
                    {
                        "documents": n + 1,
                        "position": p,
                        "later_documents": placed.later_documents,
                        "kind": kind,
                        "replayed": placed.documents_replayed,
                        "model_calls": result.model_calls,
                        "insert_seconds": round(seconds, 3),
                        "rebuild_seconds": round(rebuild, 3),
                        "ratio": round(seconds / rebuild, 4),
                        "build_seconds": round(build_seconds, 3),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
                shutil.rmtree(copy)
        return rows
    finally:
        shutil.rmtree(base, ignore_errors=True)


def render(rows: list[dict[str, Any]], real: bool) -> str:
    heads = [
        "documents",
        "position",
        "later documents",
        "kind",
        "replayed",
        "model calls",
        "insert CPU s",
        "rebuild CPU s",
        "insert / rebuild",
    ]
    body = [
        [
            r["documents"],
            r["position"],
            r["later_documents"],
            r["kind"],
            r["replayed"],
            r["model_calls"],
            f"{r['insert_seconds']:.3f}",
            f"{r['rebuild_seconds']:.2f}",
            f"{r['ratio']:.2%}",
        ]
        for r in rows
    ]
    models = "the embedded models" if real else "the fake models (plumbing only)"
    return (
        f"Measured on {report.describe(report.machine())}, {models}, by "
        f"`{report.command_line()}`. Each late article is inserted into a copy of the "
        "built store; the rebuild ingests the whole stream with one more article, in "
        "publication order, in the same process. Times are this process's CPU seconds "
        "(the machine is shared: wall time would measure its neighbours).\n\n"
        + report.table(heads, body)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000")
    parser.add_argument("--positions", default=",".join(str(p) for p in POSITIONS))
    parser.add_argument("--real", action="store_true", help="Use the embedded models.")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--no-docs", action="store_true", help="Do not touch docs/benchmarks.md.")
    args = parser.parse_args()
    positions = tuple(float(p) for p in args.positions.split(","))
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        rows += measure(n, args.real, positions)
    if args.json:
        report.write_json(args.json, {"real": args.real, "rows": rows})
    body = render(rows, args.real)
    print(body)
    if not args.no_docs:
        report.update_section(Path("docs/benchmarks.md"), "late-articles", body)


if __name__ == "__main__":
    main()
