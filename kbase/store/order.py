"""Documents in publication order: ``seq`` orders them by the moment they speak of
(published, else when they were received) and then by id, so the store is the
one ingesting them in that order would make, whatever order they arrived in."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, DateTime, func, literal, select, tuple_, update
from sqlalchemy.orm import Session

from kbase.store.models import Document, Evidence, Fact

#: A document's moment in SQL: published, else received.
MOMENT: ColumnElement[datetime] = func.coalesce(Document.published, Document.ingested_at)


def moment_of(published: datetime | None, received: datetime) -> datetime:
    """The moment a document takes its place by."""
    return published if published is not None else received


def seq_after(session: Session, moment: datetime, doc_id: str) -> int | None:
    """The seq of the first stored document that comes after ``(moment, doc_id)``
    in publication order (None: it comes after every stored one)."""
    later = tuple_(MOMENT, Document.doc_id) > tuple_(literal(moment, DateTime()), literal(doc_id))
    seq = session.scalar(select(func.min(Document.seq)).where(later))
    return None if seq is None else int(seq)


def make_room(session: Session, seq: int) -> None:
    """Shift every document from ``seq`` on, and every sequence number derived from
    them, one place later, so a document can take ``seq``."""
    # Through negatives: a plain +1 would collide with the unique seq of the next row.
    session.execute(
        update(Document)
        .where(Document.seq >= seq)
        .values(seq=-Document.seq - 1)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Document)
        .where(Document.seq < 0)
        .values(seq=-Document.seq)
        .execution_options(synchronize_session=False)
    )
    for column in (Fact.valid_from, Fact.valid_until):
        session.execute(
            update(Fact)
            .where(column >= seq)
            .values({column: column + 1})
            .execution_options(synchronize_session=False)
        )
    session.execute(
        update(Evidence)
        .where(Evidence.seq >= seq)
        .values(seq=Evidence.seq + 1)
        .execution_options(synchronize_session=False)
    )
    session.expire_all()  # loaded rows hold the old numbers
