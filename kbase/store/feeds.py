"""Subscriptions and the ids forgotten for good: the ``feeds`` and ``forgotten_ids``
tables, and the knowledge base's forgetting key.

A forgotten document's id is recorded as HMAC-SHA256 under a random key that the
knowledge base creates the first time it needs one (``meta``, ``forget_key``) and
that goes with it (a copy of the store, or its dump, keeps it). Without the key
the hash says nothing; with it, it answers one question only: "was this id
forgotten?", which is what polling asks of every item a feed lists.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from kbase.store.models import Document, Feed, ForgottenId, Meta

#: The ``meta`` key of the forgetting key.
KEY_NAME = "forget_key"


def _key(session: Session, *, create: bool) -> bytes | None:
    row = session.get(Meta, KEY_NAME)
    if row is None:
        if not create:
            return None
        row = Meta(key=KEY_NAME, value=secrets.token_hex(32))
        session.add(row)
        session.flush()
    return bytes.fromhex(row.value)


def id_hash(key: bytes, doc_id: str) -> str:
    """The keyed hash recorded for a forgotten ``doc_id`` (hex HMAC-SHA256)."""
    return hmac.new(key, doc_id.encode("utf-8"), hashlib.sha256).hexdigest()


def record_forgotten(session: Session, doc_ids: Iterable[str]) -> None:
    """Record ``doc_ids`` as forgotten for good (in the caller's transaction)."""
    ids = list(dict.fromkeys(doc_ids))
    if not ids:
        return
    key = _key(session, create=True)
    assert key is not None
    for digest in {id_hash(key, doc_id) for doc_id in ids}:
        if session.get(ForgottenId, digest) is None:
            session.add(ForgottenId(id_hash=digest))
    session.flush()


def lift_forgotten(session: Session, doc_ids: Iterable[str]) -> int:
    """Forget that ``doc_ids`` were forgotten (they may come back); how many were."""
    key = _key(session, create=False)
    ids = list(dict.fromkeys(doc_ids))
    if key is None or not ids:
        return 0
    digests = [id_hash(key, doc_id) for doc_id in ids]
    result = session.execute(
        delete(ForgottenId)
        .where(ForgottenId.id_hash.in_(digests))
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def forgotten_among(session: Session, doc_ids: Iterable[str]) -> set[str]:
    """Which of ``doc_ids`` were forgotten for good."""
    key = _key(session, create=False)
    ids = list(dict.fromkeys(doc_ids))
    if key is None or not ids:
        return set()
    by_digest = {id_hash(key, doc_id): doc_id for doc_id in ids}
    found = session.scalars(
        select(ForgottenId.id_hash).where(ForgottenId.id_hash.in_(list(by_digest)))
    )
    return {by_digest[digest] for digest in found}


def forgotten_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(ForgottenId)) or 0)


# -- subscriptions ----------------------------------------------------------------------
def all_feeds(session: Session) -> list[Feed]:
    """Every subscription, in the order they were added."""
    return list(session.scalars(select(Feed).order_by(Feed.id)))


def find_feed(session: Session, url: str) -> Feed | None:
    return session.scalar(select(Feed).where(Feed.url == url))


def reset_validators(session: Session, sources: Iterable[str]) -> None:
    """Make the next fetch of the feeds with these URLs a full one (no 304)."""
    urls = list(set(sources))
    if not urls:
        return
    for feed in session.scalars(select(Feed).where(Feed.url.in_(urls))):
        feed.etag = feed.last_modified = None


def latest_documents(session: Session, sources: list[str]) -> dict[str, tuple[int, Document]]:
    """For each of the feed URLs ``sources``: how many stored documents came from it,
    and the one received last."""
    if not sources:
        return {}
    counts = dict(
        session.execute(
            select(Document.source, func.count(Document.pk))
            .where(Document.source.in_(sources))
            .group_by(Document.source)
        )
        .tuples()
        .all()
    )
    out: dict[str, tuple[int, Document]] = {}
    for source, count in counts.items():
        last = session.scalar(
            select(Document)
            .where(Document.source == source)
            .order_by(Document.ingested_at.desc(), Document.seq.desc())
            .limit(1)
        )
        if last is not None:
            out[source] = (int(count), last)
    return out


def due_at(feed: Feed, every_seconds: float, backoff_cap: float) -> datetime | None:
    """When ``feed`` is next due (None: now): a fetch ``every_seconds`` after the
    last one, twice as long after each failure in a row up to ``backoff_cap``, and
    never before the server's Retry-After."""
    due: datetime | None = None
    if feed.last_fetch_at is not None:
        wait = every_seconds
        if feed.failures:
            wait = min(every_seconds * 2 ** min(feed.failures, 20), max(backoff_cap, every_seconds))
        due = feed.last_fetch_at + timedelta(seconds=wait)
    if feed.retry_at is not None and (due is None or feed.retry_at > due):
        due = feed.retry_at
    return due
