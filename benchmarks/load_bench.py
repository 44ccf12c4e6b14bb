"""Searches under load: reader processes searching while one writer ingests.

Each reader process loops ``KnowledgeBase.open(folder).search(query)`` (what one
``kb search`` does, minus the interpreter's start-up) and after every search checks,
in one SQL statement, that no stored document lacks its chunks or its recorded
ingest answers (a reader must never see a document without what derives from it),
and that the number of documents it sees never goes down. The writer ingests one
document per transaction with the fake models. Reported: searches per second, the
median and 95th percentile latency with and without the writer, the writer's
documents per second, errors and violations.

    python -m benchmarks.load_bench                 # 60 s per phase, 3 readers
    python -m benchmarks.load_bench --seconds 10 --readers 2 --no-docs

The result is written into docs/benchmarks.md (its ``load`` section) and, with
``--json OUT``, as JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text

from benchmarks.report import update_section, write_json

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
QUERIES = (
    "Who is the CEO of Acme?",
    "Where is Globex based?",
    "Who founded Initech?",
    "CFO of Umbrella",
)
#: Documents that are stored but lack their chunks or their recorded ingest answers.
HALF_STORED = text(
    "SELECT count(*) FROM documents d WHERE NOT EXISTS "
    "(SELECT 1 FROM chunks c WHERE c.document_pk = d.pk) OR NOT EXISTS "
    "(SELECT 1 FROM llm_record_uses u WHERE u.document_pk = d.pk AND u.role = 'ingest')"
)
DOCUMENTS = text("SELECT count(*) FROM documents")


@dataclass
class Worker:
    """What one process did in the timed window."""

    role: str
    operations: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    documents_seen: list[int] = field(default_factory=list)


def documents(count: int, *, offset: int = 0) -> list[Any]:
    """``count`` dated fake-world documents, ids ``load-<n>`` from ``offset``."""
    from kbase.llm.fake import world_news
    from kbase.sources.base import SourceDocument
    from kbase.sources.dates import parse_date

    records = world_news(offset + count, prefix="load-", seed=11)[offset:]
    return [
        SourceDocument(
            doc_id=r["id"],
            text=r["text"],
            source="load-bench",
            title=r["title"],
            url=r["url"],
            published=parse_date(r["published"]),
        )
        for r in records
    ]


def make_store(folder: Path, count: int) -> None:
    """A knowledge base on the fake models holding ``count`` documents."""
    from kbase.config import Settings
    from kbase.kb import KnowledgeBase

    settings = Settings(embedder="fake", llm="fake")
    with KnowledgeBase.open(folder, settings=settings) as kb:
        kb.ingest(documents(count))


def _wait(start_at: float) -> None:
    time.sleep(max(0.0, start_at - time.time()))


def reader(folder: str, start_at: float, seconds: float, number: int, out: str) -> None:
    """Search in a loop, opening the knowledge base for every search; check each time."""
    from kbase.kb import KnowledgeBase

    result = Worker(f"reader-{number}")
    _wait(start_at)
    stop = start_at + seconds
    seen = 0
    while time.time() < stop:
        query = QUERIES[result.operations % len(QUERIES)]
        started = time.perf_counter()
        try:
            with KnowledgeBase.open(folder, create=False) as kb:
                hits = kb.search(query)
                result.latencies.append(time.perf_counter() - started)
                with kb.runtime.engine.connect() as connection:
                    half = int(connection.execute(HALF_STORED).scalar_one())
                    now = int(connection.execute(DOCUMENTS).scalar_one())
        except Exception as exc:  # a reader must never fail: every error is reported
            result.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            continue
        result.operations += 1
        if half:
            result.violations.append(f"{half} documents without their chunks or records")
        if now < seen:
            result.violations.append(f"documents went from {seen} to {now}")
        if not all(h.doc_id and h.text for h in hits):
            result.violations.append("a hit without its document or text")
        seen = max(seen, now)
        result.documents_seen.append(now)
    Path(out).write_text(json.dumps(asdict(result)))


def writer(folder: str, start_at: float, seconds: float, offset: int, out: str) -> None:
    """Ingest one document per call until the window closes."""
    from kbase.kb import KnowledgeBase

    result = Worker("writer")
    pending = documents(2000, offset=offset)
    _wait(start_at)
    stop = start_at + seconds
    try:
        with KnowledgeBase.open(folder, create=False) as kb:
            while time.time() < stop and pending:
                started = time.perf_counter()
                kb.ingest([pending.pop(0)])
                result.latencies.append(time.perf_counter() - started)
                result.operations += 1
    except Exception:
        result.errors.append(traceback.format_exc()[-600:])
    Path(out).write_text(json.dumps(asdict(result)))


def run_phase(
    folder: Path, *, readers: int, seconds: float, write: bool, offset: int
) -> dict[str, Any]:
    """Run ``readers`` reader processes (and a writer) for ``seconds``; summarise."""
    context = multiprocessing.get_context("spawn")
    start_at = time.time() + 4.0  # every process imported and waiting before the clock
    with tempfile.TemporaryDirectory() as scratch:
        outs = [str(Path(scratch) / f"reader-{i}.json") for i in range(readers)]
        processes = [
            context.Process(target=reader, args=(str(folder), start_at, seconds, i, outs[i]))
            for i in range(readers)
        ]
        if write:
            outs.append(str(Path(scratch) / "writer.json"))
            processes.append(
                context.Process(
                    target=writer, args=(str(folder), start_at, seconds, offset, outs[-1])
                )
            )
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=seconds + 120)
            if process.is_alive():
                process.kill()
        workers = [
            Worker(**json.loads(Path(o).read_text()))
            if Path(o).exists()
            else Worker("lost", errors=["the process left no result"])
            for o in outs
        ]
    reads = [w for w in workers if w.role != "writer"]
    latencies = sorted(x for w in reads for x in w.latencies)
    written = [w for w in workers if w.role == "writer"]
    return {
        "readers": readers,
        "writer": write,
        "seconds": seconds,
        "searches": sum(w.operations for w in reads),
        "searches_per_second": round(sum(w.operations for w in reads) / seconds, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 2) if latencies else None,
        "p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 2)
        if latencies
        else None,
        "documents_written": sum(w.operations for w in written),
        "writer_docs_per_second": round(sum(w.operations for w in written) / seconds, 2),
        "writer_p95_ms": round(
            1000 * sorted(written[0].latencies)[int(0.95 * (len(written[0].latencies) - 1))], 1
        )
        if written and written[0].latencies
        else None,
        "errors": [e for w in workers for e in w.errors],
        "violations": [v for w in workers for v in w.violations],
        "documents_seen": [w.documents_seen for w in reads],
    }


def benchmark(*, readers: int, seconds: float, initial: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "kb"
        make_store(folder, initial)
        quiet = run_phase(folder, readers=readers, seconds=seconds, write=False, offset=initial)
        busy = run_phase(folder, readers=readers, seconds=seconds, write=True, offset=initial)
    for phase in (quiet, busy):
        phase.pop("documents_seen")
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared), "
        f"Python {platform.python_version()}",
        "initial_documents": initial,
        "phases": [quiet, busy],
    }


def markdown(result: dict[str, Any], command: str) -> str:
    rows = [
        "| phase | searches | searches/s | p50 ms | p95 ms | docs written | writer docs/s | "
        "writer p95 ms | errors | violations |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in result["phases"]:
        name = f"{p['readers']} readers" + (" + 1 writer" if p["writer"] else "")
        rows.append(
            f"| {name} | {p['searches']} | {p['searches_per_second']} | {p['p50_ms']} | "
            f"{p['p95_ms']} | {p['documents_written']} | {p['writer_docs_per_second']} | "
            f"{p['writer_p95_ms'] if p['writer_p95_ms'] is not None else '-'} | "
            f"{len(p['errors'])} | {len(p['violations'])} |"
        )
    seconds = result["phases"][0]["seconds"]
    return "\n".join(
        [
            "## Searches while a writer ingests",
            "",
            f"Measured with `{command}` ({seconds:g} s per phase, a store of "
            f"{result['initial_documents']} documents on the fake models, SQLite; "
            f"{result['machine']}):",
            "",
            *rows,
            "",
            "A search here is `KnowledgeBase.open(folder)` plus `search()`, as one `kb search` "
            "does without the interpreter start-up; the writer ingests one document per "
            "transaction.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each phase")
    parser.add_argument("--readers", type=int, default=3, help="reader processes")
    parser.add_argument("--initial", type=int, default=40, help="documents stored first")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/benchmarks.md")
    args = parser.parse_args()
    result = benchmark(readers=args.readers, seconds=args.seconds, initial=args.initial)
    print(json.dumps(result, indent=2))
    if args.json is not None:
        write_json(args.json, result)
    if not args.no_docs:
        command = "python -m benchmarks.load_bench" + "".join(
            f" --{name} {getattr(args, name):g}"
            for name in ("seconds", "readers", "initial")
            if getattr(args, name) != parser.get_default(name)
        )
        update_section(DOC, "load", markdown(result, command))


if __name__ == "__main__":
    main()
