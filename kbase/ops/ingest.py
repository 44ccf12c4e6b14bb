"""Ingesting documents: each one stored and run through the pipeline in its own
transaction, so a failure leaves every earlier document stored and the failing
one not at all."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from kbase.errors import DocumentError
from kbase.fewshot.pool import chosen_examples
from kbase.ops.forget import forget_documents
from kbase.ops.replay import run_pipeline
from kbase.records import Recorder
from kbase.reports import IngestReport
from kbase.runtime import Runtime, Write
from kbase.sources.base import SourceDocument
from kbase.store import queries
from kbase.store.models import Document
from kbase.vectors import bump_state

#: Called after each document and each model call with the progress so far.
ProgressFn = Callable[[dict[str, Any]], None]


def ingest(
    rt: Runtime,
    sources: Iterable[SourceDocument],
    *,
    replace: bool = False,
    progress: ProgressFn | None = None,
) -> IngestReport:
    """Store documents in order, each in its own transaction."""
    report = IngestReport()
    started = time.perf_counter()
    with rt.write() as work:
        recorder = work.recorder
        if progress is not None:
            recorder.on_call = lambda _r, _f: progress(_progress(report, recorder, started))
        try:
            for source in sources:
                _ingest_one(rt, work, source, replace, report)
                if progress is not None:
                    progress(_progress(report, recorder, started))
        finally:
            total = recorder.total
            report.llm_calls, report.model_calls = total.calls, total.model_calls
            report.prompt_tokens, report.cached_tokens = total.prompt_tokens, total.cached_tokens
            report.completion_tokens = total.completion_tokens
            report.model_seconds = round(total.seconds, 3)
            report.seconds = round(time.perf_counter() - started, 3)
    return report


def _progress(report: IngestReport, recorder: Recorder, started: float) -> dict[str, Any]:
    elapsed = max(time.perf_counter() - started, 1e-9)
    total = recorder.total
    return {
        "documents": len(report.stored) + len(report.unchanged),
        "facts": sum(r.facts_created for r in report.stored),
        "llm_calls": total.calls,
        "tokens_per_second": round(total.computed_tokens / elapsed, 1),
    }


def _ingest_one(
    rt: Runtime, work: Write, source: SourceDocument, replace: bool, report: IngestReport
) -> None:
    session = work.session
    with session.begin():
        existing = session.scalar(
            select(Document.content_hash).where(Document.doc_id == source.doc_id)
        )
    if existing is not None:
        if existing == source.content_hash:
            report.unchanged.append(source.doc_id)
            return
        if not replace:
            raise DocumentError(
                f"document {source.doc_id!r} is stored with different content: "
                "pass --replace to replace it, or give another --id"
            )
        forget_documents(rt, work, [source.doc_id])
        report.replaced.append(source.doc_id)
    with work.transaction():
        doc = Document(
            doc_id=source.doc_id,
            seq=queries.next_seq(session),
            source=source.source,
            url=source.url,
            title=source.title,
            published=source.published,
            content_hash=source.content_hash,
            text=source.text,
            ingested_at=datetime.now(UTC).replace(tzinfo=None),
        )
        session.add(doc)
        session.flush()
        examples = chosen_examples(session, rt.embedder, rt.settings.seed)
        ctx = run_pipeline(rt, work, doc, examples=examples)
        bump_state(session)
    report.stored.append(ctx.report)
