"""Cost of forgetting a document against its position and the size of the store.

For each store size, one process builds the store, then forgets documents at
several positions, each from a copy of the built store, and rebuilds the store
from scratch without the document: documents replayed, model calls, wall time,
and the ratio of forgetting to rebuilding.

Two kinds of document are forgotten: an *isolated* one, whose subjects no later
document mentions (nothing downstream can depend on it, so nothing should be
replayed), and a *contested* one, whose facts a later document rewrites (every
document from that one on is replayed, from the record).

    python -m benchmarks.forget_bench --sizes 100,1000,10000 [--json OUT]
    python -m benchmarks.forget_bench --real --sizes 30   # the embedded model
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from kbase.config import Settings
from kbase.kb import KnowledgeBase
from kbase.sources.base import SourceDocument

ROLES = ["chief executive", "chair", "finance chief", "head of sales", "lawyer"]
PEOPLE = [
    f"{a} {b}"
    for a in ("Ana", "Ben", "Chloe", "Dev", "Eli", "Fay", "Gus", "Hana")
    for b in ("Moss", "Quinn", "Reyes", "Stone", "Tate", "Voss")
]
CITIES = ["Leeds", "Oslo", "Porto", "Lyon", "Graz", "Turin", "Cork", "Bergen"]


def stream(n: int, seed: int = 0) -> list[SourceDocument]:
    """``n`` dated articles about ``n // 3 + 1`` companies; each article names who holds
    a role or where a company is based, so later articles contradict earlier ones."""
    rng = random.Random(seed)
    start = datetime(2020, 1, 1)
    docs = []
    companies = max(2, n // 3)
    for i in range(n):
        company = f"Company {rng.randrange(companies)}"
        sentences = [
            f"The {rng.choice(ROLES)} of {company} is {rng.choice(PEOPLE)}.",
            f"The city of {company} is {rng.choice(CITIES)}.",
        ]
        docs.append(
            SourceDocument(
                doc_id=f"doc-{i:05d}",
                text=" ".join(sentences),
                source="bench",
                title=f"News about {company}",
                published=start + timedelta(days=i),
            )
        )
    return docs


UNIQUE = [
    "Zebra Kites sells striped kites.",
    "Quartz Lamps ships amber lanterns.",
    "Velvet Oars rents wooden canoes.",
    "Maple Drums tunes brass cymbals.",
]


def isolated(doc_id: str, when: datetime, text: str) -> SourceDocument:
    return SourceDocument(
        doc_id=doc_id,
        text=text,
        source="bench",
        title="Zebra Kites",
        published=when,
    )


def open_kb(folder: Path, real: bool) -> KnowledgeBase:
    if real:
        return KnowledgeBase.open(folder, settings=Settings())
    from kbase.embed.fake import HashingEmbedder
    from kbase.llm.fake import world_llm

    model = world_llm()
    return KnowledgeBase.open(
        folder,
        settings=Settings(embedder="fake", llm="fake"),
        embedder=HashingEmbedder(),
        backend=lambda: model,
    )


def build(folder: Path, docs: list[SourceDocument], real: bool) -> float:
    started = time.perf_counter()
    with open_kb(folder, real) as kb:
        kb.ingest(docs)
    return time.perf_counter() - started


def measure(
    n: int, real: bool, positions: tuple[float, ...], *, build_as_rebuild: bool = False
) -> list[dict[str, Any]]:
    docs = stream(n)
    base = Path(tempfile.mkdtemp(prefix="kbase-forget-"))
    try:
        # Isolated documents (each its own words) at each position, so each kind can
        # be forgotten anywhere.
        for p, text in zip(positions, UNIQUE, strict=False):
            at = int(p * n)
            docs.insert(at, isolated(f"isolated-{p}", docs[min(at, len(docs) - 1)].published, text))
        build_seconds = build(base / "built", docs, real)
        # A rebuild costs the same whichever document it leaves out: measure one, or
        # (where a build is long) take the build itself, one document more.
        rebuild = build_seconds if build_as_rebuild else build(base / "rebuild", docs[1:], real)
        rows = []
        for p in positions:
            at = int(p * n)
            contested = next(d for d in docs[at:] if d.doc_id.startswith("doc-"))
            for kind, doc_id in (("isolated", f"isolated-{p}"), ("contested", contested.doc_id)):
                copy = base / f"copy-{kind}-{p}"
                shutil.copytree(base / "built", copy)
                with open_kb(copy, real) as kb:
                    report = kb.forget([doc_id])
                rows.append(
                    {
                        "documents": len(docs),
                        "position": p,
                        "kind": kind,
                        "replayed": report.documents_replayed,
                        "model_calls": report.model_calls,
                        "forget_seconds": report.seconds,
                        "rebuild_seconds": round(rebuild, 3),
                        "ratio": round(report.seconds / rebuild, 4),
                        "build_seconds": round(build_seconds, 3),
                        "rebuild_is_build": build_as_rebuild,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
                shutil.rmtree(copy)
        return rows
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--positions", default="0.1,0.5,0.9")
    parser.add_argument("--real", action="store_true", help="Use the embedded models.")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--build-as-rebuild",
        action="store_true",
        help="Take the build's time as the rebuild's instead of rebuilding (saves one build).",
    )
    args = parser.parse_args()
    positions = tuple(float(p) for p in args.positions.split(","))
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        rows += measure(n, args.real, positions, build_as_rebuild=args.build_as_rebuild)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"real": args.real, "rows": rows}, indent=2))
    print(
        "\n| documents | position | kind | replayed | model calls | forget s | rebuild s | ratio |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['documents']} | {r['position']} | {r['kind']} | {r['replayed']} | "
            f"{r['model_calls']} | {r['forget_seconds']:.3f} | {r['rebuild_seconds']:.2f} | "
            f"{r['ratio']:.2%} |"
        )


if __name__ == "__main__":
    main()
