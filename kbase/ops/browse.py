"""Looking at the store: documents, facts, their histories and the totals."""

from __future__ import annotations

from sqlalchemy.orm import Session

from kbase.reports import (
    DocumentDetail,
    DocumentSummary,
    FactRow,
    FactVersion,
    Stats,
    iso_time,
)
from kbase.runtime import Runtime
from kbase.store import queries


def documents(rt: Runtime) -> list[DocumentSummary]:
    """Every stored document, in ingest order."""
    return rt.read(queries.documents)


def document(rt: Runtime, doc_id: str) -> DocumentDetail:
    """A stored document with its text and the edits it caused."""

    def load(session: Session) -> DocumentDetail:
        doc = queries.document(session, doc_id)
        return DocumentDetail(
            queries.summary(doc),
            doc.text,
            queries.document_edits(session, doc),
            ingested_at=iso_time(doc.ingested_at) or "",
            version=doc.version,
            first_ingested_at=iso_time(doc.first_ingested_at),
        )

    return rt.read(load)


def facts(
    rt: Runtime,
    *,
    include_closed: bool = False,
    doc_id: str | None = None,
    limit: int | None = None,
) -> list[FactRow]:
    """Current fact versions (every one with ``include_closed``), in id order."""
    return rt.read(
        lambda s: queries.facts(s, include_closed=include_closed, limit=limit, doc_id=doc_id)
    )


def history(rt: Runtime, fact_id: int) -> list[FactVersion]:
    """Every version of the fact ``fact_id`` belongs to, oldest first, with evidence."""
    return rt.read(lambda s: queries.history(s, fact_id))


def stats(rt: Runtime, *, per_document: bool = False) -> Stats:
    """Totals of the store and its index (and each document's accounting)."""
    totals = rt.read(queries.totals)
    return Stats(
        **totals,
        index_vectors=rt.index_size(),
        strategy=rt.settings.strategy,
        llm=rt.settings.llm,
        per_document=documents(rt) if per_document else None,
    )
