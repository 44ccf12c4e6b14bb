"""The rollback-and-replay engine, shared by forgetting and curation.

A change to the ingest log (a document removed, a few-shot example changed)
alters the store in two ways: directly (the fact versions involved, the "delta")
and through every later document whose ingest saw a store it had changed. A
later document could only have seen the delta through one of its recorded
retrievals (a query text and the radius inside which its result was decided), so
the first later document with a delta fact inside one of its radii is the first
one that may decide differently (:func:`first_affected`). Everything before it
stands as it is; everything from it on is rolled back (versions created then are
dropped, versions closed then reopened) and replayed in order through the same
pipeline (:func:`replay_from`), where every request seen before is answered from
the record and only changed requests reach the model.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session

from kbase.fewshot.example import Chosen
from kbase.hashing import content_hash
from kbase.pipeline.context import DocContext
from kbase.pipeline.ingest import process_document
from kbase.pipeline.wording import word_runs
from kbase.records import CallStats
from kbase.reports import DocReport
from kbase.runtime import Runtime, Write
from kbase.store.models import (
    Chunk,
    Document,
    Embedding,
    Evidence,
    Fact,
    LLMRecord,
    LLMRecordUse,
    NameLookup,
    Retrieval,
)
from kbase.vectors import FactVectors

#: Cosines are compared with this slack, so float rounding can only add replays.
SLACK = 1e-5


def current_texts(session: Session) -> Counter[str]:
    """The texts of the current fact versions, counted."""
    return Counter(session.scalars(select(Fact.text).where(Fact.valid_until.is_(None))))


def first_affected(session: Session, vectors: FactVectors, targets: list[Document]) -> int | None:
    """The seq of the first surviving document that could have decided differently
    without ``targets``, or None if none could."""
    target_pks = {d.pk for d in targets}
    seq_of = {d.pk: d.seq for d in targets}
    delta: list[tuple[Fact, int]] = []  # (fact, seq from which it differs)
    for fact in session.scalars(select(Fact).where(Fact.document_pk.in_(target_pks))):
        delta.append((fact, seq_of[fact.document_pk]))
    for fact in session.scalars(select(Fact).where(Fact.closed_by_pk.in_(target_pks))):
        delta.append((fact, seq_of[fact.closed_by_pk or 0]))
    if not delta:
        return None
    hashes = [(f.text_hash, s) for f, s in delta]
    by_vector = _first_retrieval_hit(session, vectors, target_pks, hashes)
    by_name = _first_name_hit(session, target_pks, [(f.text, s) for f, s in delta])
    return min((s for s in (by_vector, by_name) if s is not None), default=None)


def _first_name_hit(
    session: Session, target_pks: set[int], delta: list[tuple[str, int]]
) -> int | None:
    """The seq of the first surviving document that looked facts up by a name one of
    the ``delta`` texts holds, after that text's seq."""
    rows = session.execute(
        select(Document.seq, NameLookup.name_hash, NameLookup.words)
        .join(NameLookup, NameLookup.document_pk == Document.pk)
        .where(Document.seq > min(s for _, s in delta), Document.pk.notin_(target_pks))
        .order_by(Document.seq)
    ).all()
    if not rows:
        return None
    longest = max(n for _, _, n in rows)
    since: dict[str, int] = {}  # name hash -> the first seq a delta text holds it
    for text, seq in delta:
        for run in word_runs(text, longest):
            key = content_hash(run)
            since[key] = min(seq, since.get(key, seq))
    return next((int(s) for s, h, _ in rows if h in since and since[h] < s), None)


def _first_retrieval_hit(
    session: Session, vectors: FactVectors, target_pks: set[int], delta: list[tuple[str, int]]
) -> int | None:
    """The seq of the first surviving document with a recorded retrieval whose radius
    holds one of the ``delta`` texts (by hash), after that text's seq."""
    seq_of_min = min(s for _, s in delta)
    cached = vectors.cached(session, [h for h, _ in delta])
    rows = session.execute(
        select(Document.seq, Retrieval.text_hash, Retrieval.radius)
        .join(Retrieval, Retrieval.document_pk == Document.pk)
        .where(Document.seq > seq_of_min, Document.pk.notin_(target_pks))
        .order_by(Document.seq)
    ).all()
    if not rows:
        return None
    if any(h not in cached for h, _ in delta):
        return int(rows[0][0])  # a vector is missing: assume the worst
    delta_vectors = np.stack([cached[h] for h, _ in delta])
    delta_from = np.array([s for _, s in delta])
    query_vectors = vectors.cached(session, [h for _, h, _ in rows])
    for start in range(0, len(rows), 4096):
        batch = rows[start : start + 4096]
        if any(h not in query_vectors for _, h, _ in batch):
            return int(next(s for s, h, _ in batch if h not in query_vectors))
        queries_ = np.stack([query_vectors[h] for _, h, _ in batch])
        sims = queries_ @ delta_vectors.T
        radius = np.array([r for _, _, r in batch])[:, None]
        seqs = np.array([s for s, _, _ in batch])[:, None]
        hit = (sims >= radius - SLACK) & (delta_from[None, :] < seqs)
        rows_hit = np.flatnonzero(hit.any(axis=1))
        if len(rows_hit):
            return int(batch[int(rows_hit[0])][0])
    return None


def rollback_from(session: Session, cut: int) -> list[int]:
    """Undo what documents from seq ``cut`` on derived; returns deleted fact ids."""
    later = select(Document.pk).where(Document.seq >= cut)
    deleted = list(session.scalars(select(Fact.id).where(Fact.valid_from >= cut)))
    session.execute(delete(Evidence).where(Evidence.seq >= cut))
    session.execute(delete(Fact).where(Fact.valid_from >= cut))
    session.execute(
        update(Fact)
        .where(Fact.valid_until >= cut)
        .values(valid_until=None, closed_by_pk=None, close_reason=None)
    )
    session.execute(delete(Retrieval).where(Retrieval.document_pk.in_(later)))
    session.execute(delete(NameLookup).where(NameLookup.document_pk.in_(later)))
    session.execute(delete(Chunk).where(Chunk.document_pk.in_(later)))
    session.execute(
        delete(LLMRecordUse).where(
            LLMRecordUse.document_pk.in_(later), LLMRecordUse.role == "ingest"
        )
    )
    return deleted


def remove_own_effects(session: Session, doc: Document) -> list[int]:
    """Undo what one forgotten document derived directly; returns deleted fact ids."""
    deleted = list(session.scalars(select(Fact.id).where(Fact.document_pk == doc.pk)))
    session.execute(delete(Evidence).where(Evidence.fact_id.in_(deleted)))
    session.execute(delete(Fact).where(Fact.document_pk == doc.pk))
    session.execute(
        update(Fact)
        .where(Fact.closed_by_pk == doc.pk)
        .values(valid_until=None, closed_by_pk=None, close_reason=None)
    )
    return deleted


def drop_question_answers(session: Session, pks: list[int]) -> None:
    """Recorded answers to questions whose prompts held text of these documents."""
    keys = list(
        session.scalars(
            select(LLMRecordUse.key)
            .where(LLMRecordUse.document_pk.in_(pks), LLMRecordUse.role == "context")
            .distinct()
        )
    )
    for start in range(0, len(keys), 500):
        batch = keys[start : start + 500]
        session.execute(delete(LLMRecordUse).where(LLMRecordUse.key.in_(batch)))
        session.execute(delete(LLMRecord).where(LLMRecord.key.in_(batch)))


def collect_garbage(session: Session) -> None:
    """Drop recorded answers no document uses and embeddings nothing refers to."""
    session.execute(delete(LLMRecord).where(~exists().where(LLMRecordUse.key == LLMRecord.key)))
    referenced = (
        select(Fact.text_hash).union(select(Chunk.text_hash), select(Retrieval.text_hash))
    ).subquery()
    session.execute(delete(Embedding).where(Embedding.text_hash.notin_(select(referenced.c[0]))))


def run_pipeline(
    rt: Runtime, work: Write, doc: Document, *, examples: Chosen, view_seq: int | None = None
) -> DocContext:
    """Run the pipeline for a stored document (first ingest or replay) inside the
    write's open transaction, and record its accounting on the document.
    ``view_seq``: the document sees the store as of that seq (a late document)."""
    recorder = work.recorder
    recorder.stats = CallStats()
    ctx = DocContext(
        session=work.session,
        settings=rt.settings,
        recorder=recorder,
        vectors=work.vectors,
        doc=doc,
        report=DocReport(doc.doc_id, doc.seq),
        examples=examples,
        indexed=work.pending,
        view_seq=view_seq,
    )
    process_document(ctx)
    stats, report = recorder.stats, ctx.report
    doc.llm_calls = report.llm_calls = stats.calls
    doc.prompt_tokens = report.prompt_tokens = stats.prompt_tokens
    doc.cached_tokens = report.cached_tokens = stats.cached_tokens
    doc.completion_tokens = report.completion_tokens = stats.completion_tokens
    doc.model_seconds = report.model_seconds = round(stats.seconds, 3)
    return ctx


def replay_from(rt: Runtime, work: Write, cut: int, examples: Chosen) -> int:
    """Replay, in order, the documents from seq ``cut`` on (already rolled back) and
    return how many there were."""
    session = work.session
    replay = list(
        session.scalars(select(Document).where(Document.seq >= cut).order_by(Document.seq))
    )
    drop_question_answers(session, [d.pk for d in replay])
    for doc in replay:
        run_pipeline(rt, work, doc, examples=examples)
    return len(replay)


def first_seq(session: Session) -> int | None:
    """The seq of the first stored document (None: none is stored)."""
    first = session.scalar(select(func.min(Document.seq)))
    return None if first is None else int(first)


def rollback_and_replay_all(rt: Runtime, work: Write, examples: Chosen) -> int:
    """Rebuild every derived row from the ingest log (after a few-shot change);
    returns how many documents were replayed."""
    first = first_seq(work.session)
    if first is None:
        return 0
    work.delete(rollback_from(work.session, first))
    return replay_from(rt, work, first, examples)
