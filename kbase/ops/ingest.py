"""Ingesting documents, each at its place in publication order.

A batch is put in publication order first (published date, else when it was
received, then the id). Each document is stored and run through the pipeline in
its own transaction, so a failure leaves every earlier document stored and the
failing one not at all. A document published before some already stored (a late
article) takes its place among them: it sees the store as it stood at its date,
and the later documents that could have seen its facts (the radius rule of
:func:`kbase.ops.replay.first_affected`) are rolled back and replayed. A document
that arrives again with other content is a new version: the old one is forgotten
exactly and the new one placed at its date.

A document given by the user is stored even if it was forgotten before, and is no
longer kept out of polls; polling passes ``skip_forgotten`` and leaves out the
documents whose ids were forgotten (:mod:`kbase.store.feeds`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from kbase.fewshot.pool import chosen_examples
from kbase.ops.forget import forget_documents
from kbase.ops.replay import (
    collect_garbage,
    first_affected,
    replay_from,
    rollback_from,
    run_pipeline,
)
from kbase.records import Recorder
from kbase.reports import DocReport, IngestReport
from kbase.runtime import Runtime, Write
from kbase.sources.base import SourceDocument
from kbase.store import order, queries
from kbase.store.feeds import forgotten_among, lift_forgotten
from kbase.store.models import Document
from kbase.vectors import bump_state

#: Called after each document and each model call with the progress so far.
ProgressFn = Callable[[dict[str, Any]], None]


def now() -> datetime:
    """The time a document is received, naive UTC like every stored time."""
    return datetime.now(UTC).replace(tzinfo=None)


def publication_order(sources: Iterable[SourceDocument]) -> list[SourceDocument]:
    """The documents of a batch in the order they take their places: undated ones
    count as received now, all at one moment, so their ids order them."""
    received = now()
    stamped = [s if s.received else replace(s, received=received) for s in sources]
    return sorted(stamped, key=lambda s: (s.published or s.received or received, s.doc_id))


def ingest(
    rt: Runtime,
    sources: Iterable[SourceDocument],
    *,
    progress: ProgressFn | None = None,
    skip_forgotten: bool = False,
    should_stop: Callable[[], bool] | None = None,
    keep_incomplete: bool = False,
) -> IngestReport:
    """Store documents at their places in publication order.

    With ``skip_forgotten`` the documents whose ids were forgotten (and not allowed
    again) are left out and listed in the report's ``forgotten``; without it they
    are stored and polls stop leaving them out. ``should_stop`` is asked before each
    document: once it says so, the rest are not stored (``stopped``).

    A document a chunk of which the model's answers never fitted is not stored (its
    transaction rolls back, recorded answers included) and is listed in ``failed``:
    the next ingest of it asks the model again, where a stored document would have
    been "unchanged" for good. ``keep_incomplete`` stores it all the same (a replay
    of a store made before this rule, by ``kb verify --deep``).
    """
    report = IngestReport()
    started = time.perf_counter()
    ordered = publication_order(sources)
    with rt.write() as work:
        recorder = work.recorder
        if progress is not None:
            recorder.on_call = lambda _r, _f: progress(_progress(report, recorder, started))
        try:
            if skip_forgotten:  # under the writer lock: no forget can come in between
                with work.session.begin():
                    kept_out = forgotten_among(work.session, [s.doc_id for s in ordered])
                report.forgotten = [s.doc_id for s in ordered if s.doc_id in kept_out]
                ordered = [s for s in ordered if s.doc_id not in kept_out]
            for source in ordered:
                if should_stop is not None and should_stop():
                    report.stopped = True
                    break
                _ingest_one(rt, work, source, report, keep_incomplete=keep_incomplete)
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
        "stored": len(report.stored),
        "facts": sum(r.facts_created for r in report.stored),
        "llm_calls": total.calls,
        "tokens_per_second": round(total.computed_tokens / elapsed, 1),
    }


class _Incomplete(Exception):
    """Rolls back the transaction of a document the model's answers failed for."""

    def __init__(self, report: DocReport) -> None:
        super().__init__(report.doc_id)
        self.report = report


def _ingest_one(
    rt: Runtime,
    work: Write,
    source: SourceDocument,
    report: IngestReport,
    *,
    keep_incomplete: bool = False,
) -> None:
    session = work.session
    with session.begin():
        stored = queries.find_document(session, source.doc_id)
        previous = None if stored is None else (stored.content_hash, stored.version)
        first_ingested = None if stored is None else stored.first_ingested_at or stored.ingested_at
    version = 1
    if previous is not None:
        if previous[0] == source.content_hash:
            report.unchanged.append(source.doc_id)
            return
        forget = forget_documents(rt, work, [source.doc_id])
        report.documents_replayed += forget.documents_replayed
        report.updated.append(source.doc_id)
        version = previous[1] + 1
    try:
        with work.transaction():
            doc_report = _place(rt, work, source, version, first_ingested)
            if doc_report.chunks_skipped and not keep_incomplete:
                raise _Incomplete(doc_report)
            lift_forgotten(session, [source.doc_id])
            bump_state(session)
    except _Incomplete as failed:
        report.failed.append(failed.report)
        return
    report.documents_replayed += doc_report.documents_replayed
    report.stored.append(doc_report)


def _place(
    rt: Runtime,
    work: Write,
    source: SourceDocument,
    version: int,
    first_ingested: datetime | None,
) -> DocReport:
    """Inside the write's transaction: store ``source`` at its place, run it through
    the pipeline as of its date, and replay the later documents it could change."""
    session = work.session
    received = source.received or now()
    at = order.seq_after(session, order.moment_of(source.published, received), source.doc_id)
    later = 0
    if at is None:
        seq = queries.next_seq(session)
    else:
        later = int(session.scalar(select(func.count(Document.pk)).where(Document.seq >= at)) or 0)
        order.make_room(session, at)
        seq = at
    doc = Document(
        doc_id=source.doc_id,
        seq=seq,
        source=source.source,
        url=source.url,
        title=source.title,
        published=source.published,
        content_hash=source.content_hash,
        text=source.text,
        ingested_at=received,
        version=version,
        first_ingested_at=first_ingested,
    )
    session.add(doc)
    session.flush()
    examples = chosen_examples(session, rt.embedder, rt.settings.seed)
    ctx = run_pipeline(rt, work, doc, examples=examples, view_seq=None if at is None else seq)
    ctx.report.version, ctx.report.later_documents = version, later
    if at is not None:
        cut = first_affected(session, work.vectors, [doc])
        if cut is not None:
            work.delete(rollback_from(session, cut))
            ctx.report.documents_replayed = replay_from(rt, work, cut, examples)
            collect_garbage(session)  # what the replaced decisions alone had cached
    return ctx.report
