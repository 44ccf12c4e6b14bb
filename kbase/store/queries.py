"""Read-only questions about the store (documents, facts, history, totals)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from kbase.errors import DocumentError, NotFoundError
from kbase.reports import (
    Citation,
    DatedDocument,
    DocumentSummary,
    Edit,
    EvidenceRow,
    FactRow,
    FactVersion,
    iso_date,
)
from kbase.store.models import Document, Evidence, Fact, LLMRecord


@dataclass(frozen=True, slots=True)
class FactColumns:
    """A fact version's columns as a question's retrieval reads them: plain values,
    not an ORM row (making one costs more than reading its columns)."""

    id: int
    text: str
    lineage_id: int | None
    document_pk: int
    valid_from: int
    valid_until: int | None

    @classmethod
    def of(cls, fact: Fact) -> FactColumns:
        """The columns of an ORM row."""
        return cls(
            fact.id, fact.text, fact.lineage_id, fact.document_pk, fact.valid_from, fact.valid_until
        )


def find_document(session: Session, doc_id: str) -> Document | None:
    return session.scalar(select(Document).where(Document.doc_id == doc_id))


def document(session: Session, doc_id: str) -> Document:
    doc = find_document(session, doc_id)
    if doc is None:
        raise DocumentError(f"no document with id {doc_id!r}: list them with `kb docs list`")
    return doc


def next_seq(session: Session) -> int:
    return int(session.scalar(select(func.max(Document.seq))) or 0) + 1


def seq_as_of(session: Session, when: date) -> int:
    """The seq after which the store stood as of ``when``: that of the last document
    published on or before it (undated documents count from their ingest time)."""
    end = datetime.combine(when, time.max)
    moment = func.coalesce(Document.published, Document.ingested_at)
    return int(session.scalar(select(func.max(Document.seq)).where(moment <= end)) or 0)


def documents_by_pk(session: Session, pks: set[int]) -> dict[int, Document]:
    if not pks:
        return {}
    return {d.pk: d for d in session.scalars(select(Document).where(Document.pk.in_(pks)))}


def citations_by_pk(session: Session, pks: set[int]) -> dict[int, Citation]:
    """The citations of these documents (only the columns a citation needs)."""
    if not pks:
        return {}
    rows = session.execute(
        select(
            Document.pk, Document.doc_id, Document.title, Document.url, Document.published
        ).where(Document.pk.in_(pks))
    )
    return {
        pk: Citation.of(doc_id, title, url, published) for pk, doc_id, title, url, published in rows
    }


def document_texts(session: Session, pks: set[int]) -> dict[int, str]:
    """The stored text of these documents, by primary key."""
    if not pks:
        return {}
    rows = session.execute(select(Document.pk, Document.text).where(Document.pk.in_(pks)))
    return {pk: text for pk, text in rows}


def lineage_documents(session: Session, fact: Fact | FactColumns) -> set[int]:
    """Documents whose text went into ``fact``: its creator and every earlier version's."""
    rows = session.execute(
        select(Fact.document_pk).where(Fact.lineage_id == fact.lineage_id, Fact.id <= fact.id)
    )
    return {pk for (pk,) in rows} | {fact.document_pk}


def summary(doc: Document) -> DocumentSummary:
    """A document's identity, provenance and accounting."""
    return DocumentSummary(
        doc_id=doc.doc_id,
        seq=doc.seq,
        title=doc.title,
        url=doc.url,
        published=iso_date(doc.published),
        source=doc.source,
        llm_calls=doc.llm_calls,
        prompt_tokens=doc.prompt_tokens,
        cached_tokens=doc.cached_tokens,
        completion_tokens=doc.completion_tokens,
        model_seconds=round(doc.model_seconds, 3),
    )


def documents(session: Session) -> list[DocumentSummary]:
    """Every stored document, in ingest order."""
    return [summary(d) for d in session.scalars(select(Document).order_by(Document.seq))]


def document_edits(session: Session, doc: Document) -> list[Edit]:
    """Every fact the document created, reinforced, retired or rewrote."""
    rows = session.execute(
        select(Evidence.relation, Fact.id, Fact.text)
        .join(Fact, Fact.id == Evidence.fact_id)
        .where(Evidence.document_pk == doc.pk)
        .order_by(Evidence.id)
    )
    return [Edit(r, i, t) for r, i, t in rows]


def history(session: Session, fact_id: int) -> list[FactVersion]:
    """Every version of the fact ``fact_id`` belongs to, oldest first, with evidence."""
    fact = session.get(Fact, fact_id)
    if fact is None:
        raise NotFoundError(
            f"no fact with id {fact_id}: find ids with `kb facts list` or `kb search`"
        )
    versions = list(
        session.scalars(
            select(Fact)
            .where(Fact.lineage_id == fact.lineage_id)
            .order_by(Fact.valid_from, Fact.id)
        )
    )
    docs = documents_by_pk(
        session,
        {v.document_pk for v in versions} | {v.closed_by_pk for v in versions if v.closed_by_pk},
    )
    out = []
    for v in versions:
        evidence = session.execute(
            select(Evidence.relation, Document.doc_id, Document.published)
            .join(Document, Document.pk == Evidence.document_pk)
            .where(Evidence.fact_id == v.id)
            .order_by(Evidence.seq, Evidence.id)
        )
        closed = docs.get(v.closed_by_pk) if v.closed_by_pk else None
        out.append(
            FactVersion(
                id=v.id,
                text=v.text,
                current=v.valid_until is None,
                valid_from=_dated(docs[v.document_pk]),
                valid_until=_dated(closed) if closed else None,
                created_by=docs[v.document_pk].doc_id,
                closed_by=closed.doc_id if closed else None,
                close_reason=v.close_reason,
                replaces=v.replaces_id,
                evidence=[EvidenceRow(r, d, iso_date(p)) for r, d, p in evidence],
            )
        )
    return out


def _dated(doc: Document) -> DatedDocument:
    return DatedDocument(doc.seq, doc.doc_id, iso_date(doc.published))


def facts(
    session: Session,
    *,
    include_closed: bool = False,
    limit: int | None = None,
    doc_id: str | None = None,
) -> list[FactRow]:
    """Current fact versions (or every one), in id order."""
    query = select(Fact, Document.doc_id).join(Document, Document.pk == Fact.document_pk)
    if not include_closed:
        query = query.where(Fact.valid_until.is_(None))
    if doc_id is not None:
        query = query.where(Document.doc_id == doc_id)
    query = query.order_by(Fact.id)
    if limit:
        query = query.limit(limit)
    return [
        FactRow(f.id, f.text, d, f.valid_until is None, f.close_reason)
        for f, d in session.execute(query)
    ]


def totals(session: Session) -> dict[str, Any]:
    """Counts of documents, facts and recorded answers, and the ingest accounting."""
    count = func.count()
    docs = session.execute(
        select(
            count,
            func.coalesce(func.sum(Document.llm_calls), 0),
            func.coalesce(func.sum(Document.prompt_tokens), 0),
            func.coalesce(func.sum(Document.cached_tokens), 0),
            func.coalesce(func.sum(Document.completion_tokens), 0),
            func.coalesce(func.sum(Document.model_seconds), 0.0),
        )
    ).one()
    current = session.scalar(select(count).select_from(Fact).where(Fact.valid_until.is_(None)))
    closed = session.scalar(
        select(count)
        .select_from(Fact)
        .where(or_(Fact.close_reason == "retired", Fact.close_reason == "rewritten"))
    )
    records = session.execute(
        select(
            count,
            func.coalesce(func.sum(LLMRecord.prompt_tokens), 0),
            func.coalesce(func.sum(LLMRecord.completion_tokens), 0),
        )
    ).one()
    return {
        "documents": docs[0],
        "facts_current": current,
        "facts_closed": closed,
        "ingest_llm_calls": docs[1],
        "ingest_prompt_tokens": docs[2],
        "ingest_cached_tokens": docs[3],
        "ingest_completion_tokens": docs[4],
        "ingest_model_seconds": round(float(docs[5]), 2),
        "recorded_answers": records[0],
        "recorded_prompt_tokens": records[1],
        "recorded_completion_tokens": records[2],
    }
