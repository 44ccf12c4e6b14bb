"""Forgetting documents exactly: the store becomes what it would be had they never
been ingested.

The forgotten documents changed the store in two ways: directly (the fact
versions they created or closed, their "delta") and through every later
document whose ingest saw a store they had changed. A later document could
only have seen the delta through one of its recorded retrievals (a query text and
the radius inside which its result was decided), so the first later document
with a delta fact inside one of its radii is the first one that may decide
differently. Everything before it stands as it is; everything from it on is
rolled back (versions created then are dropped, versions closed then reopened)
and replayed in order through the same pipeline, where every request seen
before is answered from the record and only changed requests reach the model.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import delete, exists, func, select, text, update
from sqlalchemy.orm import Session

from kbase.examples import (
    Chosen,
    chosen_examples,
    examples_of_documents,
    remove_examples,
    same_choice,
)
from kbase.records import Recorder
from kbase.reports import ForgetReport
from kbase.store import queries
from kbase.store.models import (
    Chunk,
    Document,
    Embedding,
    Evidence,
    Fact,
    LLMRecord,
    LLMRecordUse,
    Retrieval,
)
from kbase.vectors import FactVectors, bump_state

if TYPE_CHECKING:
    from kbase.kb import KnowledgeBase

#: Cosines are compared with this slack, so float rounding can only add replays.
SLACK = 1e-5


def _current_texts(session: Session) -> Counter[str]:
    return Counter(session.scalars(select(Fact.text).where(Fact.valid_until.is_(None))))


def first_affected(session: Session, vectors: FactVectors, targets: list[Document]) -> int | None:
    """The seq of the first surviving document that could have decided differently
    without ``targets``, or None if none could."""
    target_pks = {d.pk for d in targets}
    seq_of = {d.pk: d.seq for d in targets}
    delta: list[tuple[str, int]] = []  # (text hash, seq from which it differs)
    for fact in session.scalars(select(Fact).where(Fact.document_pk.in_(target_pks))):
        delta.append((fact.text_hash, seq_of[fact.document_pk]))
    for fact in session.scalars(select(Fact).where(Fact.closed_by_pk.in_(target_pks))):
        delta.append((fact.text_hash, seq_of[fact.closed_by_pk or 0]))
    if not delta:
        return None
    cached = vectors.cached(session, [h for h, _ in delta])
    rows = session.execute(
        select(Document.seq, Retrieval.text_hash, Retrieval.radius)
        .join(Retrieval, Retrieval.document_pk == Document.pk)
        .where(Document.seq > min(seq_of.values()), Document.pk.notin_(target_pks))
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


def _rollback_from(session: Session, cut: int) -> list[int]:
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
    session.execute(delete(Chunk).where(Chunk.document_pk.in_(later)))
    session.execute(
        delete(LLMRecordUse).where(
            LLMRecordUse.document_pk.in_(later), LLMRecordUse.role == "ingest"
        )
    )
    return deleted


def _remove_own_effects(session: Session, doc: Document) -> list[int]:
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


def _drop_question_answers(session: Session, pks: list[int]) -> None:
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


def _collect_garbage(session: Session) -> None:
    """Drop recorded answers no document uses and embeddings nothing refers to."""
    session.execute(delete(LLMRecord).where(~exists().where(LLMRecordUse.key == LLMRecord.key)))
    referenced = (
        select(Fact.text_hash).union(select(Chunk.text_hash), select(Retrieval.text_hash))
    ).subquery()
    session.execute(delete(Embedding).where(Embedding.text_hash.notin_(select(referenced.c[0]))))


def replay_from(
    kb: KnowledgeBase, session: Session, recorder: Recorder, cut: int, examples: Chosen
) -> int:
    """Replay, in order, the documents from seq ``cut`` on (already rolled back) and
    return how many there were."""
    replay = list(
        session.scalars(select(Document).where(Document.seq >= cut).order_by(Document.seq))
    )
    _drop_question_answers(session, [d.pk for d in replay])
    vectors = kb.vectors(session)
    for doc in replay:
        kb.run_pipeline(session, vectors, recorder, doc, examples=examples)
    return len(replay)


def rollback_and_replay_all(
    kb: KnowledgeBase, session: Session, recorder: Recorder, examples: Chosen
) -> tuple[list[int], int]:
    """Rebuild every derived row from the ingest log (after a few-shot change)."""
    first = session.scalar(select(func.min(Document.seq)))
    if first is None:
        return [], 0
    deleted = _rollback_from(session, int(first))
    return deleted, replay_from(kb, session, recorder, int(first), examples)


def forget_documents(
    kb: KnowledgeBase, session: Session, doc_ids: list[str], *, missing_ok: bool = False
) -> ForgetReport:
    """Forget ``doc_ids`` (all replayed at once, from the earliest) in one transaction.

    An id that is not stored is an error, or with ``missing_ok`` is listed in the
    report's ``missing``: re-running a forget that was interrupted after its commit
    then finishes the job (the index save and the compaction that follow a commit).
    """
    started = time.perf_counter()
    vectors = kb.vectors(session)
    recorder = kb.recorder(session)
    seed = kb.settings.seed
    report = ForgetReport(forgotten=[])
    deleted: list[int] = []
    before = after = Counter[str]()
    try:
        with session.begin():
            targets: list[Document] = []
            for doc_id in dict.fromkeys(doc_ids):
                doc = queries.find_document(session, doc_id)
                if doc is not None:
                    targets.append(doc)
                elif missing_ok:
                    report.missing.append(doc_id)
                else:
                    queries.document(session, doc_id)  # raises the error for an unknown id
            report.forgotten = [d.doc_id for d in targets]
            targets.sort(key=lambda d: d.seq)
            if targets:
                deleted, before, after = _forget_targets(
                    kb, session, vectors, recorder, targets, seed, report
                )
    except BaseException:
        kb.drop_vectors()
        raise
    kb.finish_write(session, deleted)
    report.model_calls = recorder.total.model_calls
    report.replayed_calls = recorder.total.calls - recorder.total.model_calls
    report.facts_removed = sum((before - after).values())
    report.facts_restored = sum((after - before).values())
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _forget_targets(
    kb: KnowledgeBase,
    session: Session,
    vectors: FactVectors,
    recorder: Recorder,
    targets: list[Document],
    seed: int,
    report: ForgetReport,
) -> tuple[list[int], Counter[str], Counter[str]]:
    """Inside the forget's transaction: remove ``targets`` (in seq order) and replay
    what they could have changed; returns the deleted fact ids and the current fact
    texts before and after."""
    target_pks = {d.pk for d in targets}
    before = _current_texts(session)
    chosen = chosen_examples(session, kb.embedder, seed)
    derived = examples_of_documents(session, target_pks)
    remove_examples(session, seed, derived)
    now_chosen = chosen_examples(session, kb.embedder, seed)
    report.fewshot_changed = not same_choice(chosen, now_chosen)
    if report.fewshot_changed:  # every prompt that showed them changed
        cut: int | None = int(session.scalar(select(func.min(Document.seq))) or 1)
    else:
        cut = first_affected(session, vectors, targets)
    deleted: list[int] = []
    if cut is not None:
        # The targets' own rows from the cut on go with the rollback.
        deleted += _rollback_from(session, cut)
    for doc in reversed(targets):
        if cut is None or doc.seq < cut:
            deleted += _remove_own_effects(session, doc)
    _drop_question_answers(session, sorted(target_pks))
    for doc in targets:
        session.delete(doc)
    session.flush()
    if cut is not None:
        report.documents_replayed = replay_from(kb, session, recorder, cut, now_chosen)
    _collect_garbage(session)
    bump_state(session)
    return deleted, before, _current_texts(session)


def checkpoint_sqlite(session: Session) -> None:
    """Fold the write-ahead log into the database and truncate it, so deleted rows
    leave no copy there (secure_delete already zeroes them in the database file)."""
    if session.get_bind().dialect.name == "sqlite":
        with session.begin():
            session.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
