"""Fact vectors: cached embeddings in SQL, an index derived from them, and
retrieval that sees only the fact versions valid at the asked time.

The index holds every fact version (current and closed), so questions "as of" a
past date search the same index. Validity is SQL's: a question's retrieval
(:meth:`FactVectors.retrieve`) applies it inside the one index search, through a
filter of the versions valid at the asked seq built from SQL once per store
state, and re-checks every row it reads; the ingest pipeline's lookups
(:meth:`FactVectors.nearest`, :meth:`FactVectors.within`), which run inside a
write whose changes are not yet committed, filter the rows they read by primary
key.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt
from sqlalchemy import Select, and_, bindparam, or_, select
from sqlalchemy.orm import Session

from kbase.embed.base import Embedder, Vectors
from kbase.hashing import content_hash
from kbase.index.base import IdFilter, VectorIndex
from kbase.reports import Citation
from kbase.store import queries
from kbase.store.models import Document, Embedding, Fact, Meta
from kbase.store.queries import FactColumns

STATE_KEY = "state"
#: ``valid_until`` of a current version, in the in-memory validity arrays.
_OPEN = np.iinfo(np.int64).max
#: Validity filters (one per asked seq) and as-of seqs kept per store state.
_CACHED = 64
_STATE = select(Meta.value).where(Meta.key == STATE_KEY)
#: Fact rows by primary key with the columns a citation needs, built once.
_CITED = (
    select(
        Fact.id,
        Fact.text,
        Fact.lineage_id,
        Fact.document_pk,
        Fact.valid_from,
        Fact.valid_until,
        Document.doc_id,
        Document.title,
        Document.url,
        Document.published,
    )
    .join(Document, Document.pk == Fact.document_pk)
    .where(Fact.id.in_(bindparam("ids", expanding=True)))
)


class _Unread:
    """The type of :data:`_UNREAD`: no store state read yet."""


_UNREAD = _Unread()


#: What a hit holds: an ORM row (the pipeline's lookups, which may change it) or
#: the plain columns (a question's retrieval).
F = TypeVar("F", Fact, FactColumns)


@dataclass(frozen=True)
class Hit(Generic[F]):
    fact: F
    score: float
    #: The fact's document as a citation, when retrieval read it with the fact.
    citation: Citation | None = None


@dataclass
class _ReadState:
    """What retrieval reads from SQL once per store state: every fact version's
    validity, the filters made from it, and the seqs of the dates asked about."""

    token: str
    ids: npt.NDArray[np.int64]
    starts: npt.NDArray[np.int64]
    ends: npt.NDArray[np.int64]
    filters: dict[int | None, IdFilter] = field(default_factory=dict)
    seqs: dict[date, int] = field(default_factory=dict)

    @classmethod
    def read(cls, session: Session, token: str) -> _ReadState:
        query = select(Fact.id, Fact.valid_from, Fact.valid_until)
        rows = session.connection().execute(query).all()
        table = np.array(
            [(i, start, _OPEN if end is None else end) for i, start, end in rows], dtype=np.int64
        ).reshape(len(rows), 3)
        return cls(token, table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy())

    def allowed(self, at_seq: int | None) -> IdFilter:
        """The versions valid after document ``at_seq`` (None: now)."""
        found = self.filters.get(at_seq)
        if found is None:
            if at_seq is None:
                valid = self.ends == _OPEN
            else:
                valid = (self.starts <= at_seq) & (self.ends > at_seq)
            found = IdFilter.of(self.ids[valid])
            if len(self.filters) >= _CACHED:
                self.filters.pop(next(iter(self.filters)))
            self.filters[at_seq] = found
        return found

    def seq_as_of(self, session: Session, when: date) -> int:
        found = self.seqs.get(when)
        if found is None:
            found = queries.seq_as_of(session, when)
            if len(self.seqs) >= _CACHED:
                self.seqs.pop(next(iter(self.seqs)))
            self.seqs[when] = found
        return found


def _valid(start: int, end: int | None, at_seq: int | None) -> bool:
    if at_seq is None:
        return end is None
    return start <= at_seq and (end is None or end > at_seq)


def valid_at(seq: int | None) -> Select[Fact]:
    """Fact versions valid after document ``seq`` (``None``: now)."""
    if seq is None:
        return select(Fact).where(Fact.valid_until.is_(None))
    return select(Fact).where(
        and_(Fact.valid_from <= seq, or_(Fact.valid_until.is_(None), Fact.valid_until > seq))
    )


def _rank(hits: list[Hit[F]]) -> list[Hit[F]]:
    # Scores first, then text: never row ids, which differ between a store and its replay.
    return sorted(hits, key=lambda h: (-h.score, h.fact.text, h.fact.valid_from))


class FactVectors:
    """Embeds texts through the cache and retrieves valid facts from the index."""

    def __init__(self, embedder: Embedder, index: VectorIndex) -> None:
        self.embedder = embedder
        self.index = index
        #: The store state the in-memory index was last made to match.
        self.synced: str | None = None
        self._reads: _ReadState | None = None

    # -- embeddings -------------------------------------------------------------------
    def embed(self, session: Session, texts: Sequence[str]) -> Vectors:
        """Vectors of ``texts``, from the cache where present; new ones are cached."""
        hashes = [content_hash(t) for t in texts]
        found = self.cached(session, hashes)
        missing = sorted(
            {h: t for h, t in zip(hashes, texts, strict=True) if h not in found}.items()
        )
        if missing:
            fresh = self.embedder.embed([t for _, t in missing])
            for (text_hash, _), vector in zip(missing, fresh, strict=True):
                found[text_hash] = vector
                session.add(
                    Embedding(
                        model=self.embedder.model_id,
                        text_hash=text_hash,
                        vector=vector.astype(np.float32).tobytes(),
                    )
                )
            session.flush()
        if not texts:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        return np.stack([found[h] for h in hashes]).astype(np.float32)

    def cached(self, session: Session, hashes: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        """Cached vectors of the given text hashes (absent ones are left out)."""
        return cached_vectors(session, self.embedder.model_id, hashes)

    # -- index ------------------------------------------------------------------------
    def add_facts(self, session: Session, facts: Sequence[Fact]) -> None:
        """Index fact versions that were just flushed (their ids are set)."""
        if not facts:
            return
        vectors = self.embed(session, [f.text for f in facts])
        self.index.add(np.array([f.id for f in facts], dtype=np.int64), vectors)

    def retrieve(
        self,
        session: Session,
        vector: Vectors,
        k: int,
        *,
        as_of: date | None = None,
        token: str | _Unread | None = _UNREAD,
    ) -> list[Hit[FactColumns]]:
        """A question's retrieval: the ``k`` facts nearest ``vector`` valid now (or
        ``as_of``), best first, each with its document's citation. Reads only rows by
        primary key, in the caller's transaction (a read: SQL is queried on the
        connection, past the ORM, which would cost more than the rows). ``token``: the
        store state the caller read in this transaction (read here if not given)."""
        if isinstance(token, _Unread):
            token = state_token(session)
        if token is None or token != self.synced:
            # Another process wrote since the index was synced: SQL alone decides.
            at_seq = queries.seq_as_of(session, as_of) if as_of else None
            return [] if at_seq == 0 else self._as_columns(session, vector, k, at_seq)
        if self._reads is None or self._reads.token != token:
            self._reads = _ReadState.read(session, token)
        at_seq = self._reads.seq_as_of(session, as_of) if as_of else None
        if at_seq == 0:
            return []
        # Validity inside the one search; more candidates than k only so that ties
        # at the k-th score are broken by text, as _rank does, not by the index.
        ids, scores = self.index.search(vector, max(4 * k, 32), allowed=self._reads.allowed(at_seq))
        cut = min(k, len(ids))
        while 0 < cut < len(ids) and scores[cut] == scores[cut - 1]:
            cut += 1
        hits = self._cited_hits(session, ids[:cut], scores[:cut], at_seq)
        if len(hits) < min(cut, k):  # a row changed under the filter: SQL decides
            return self._as_columns(session, vector, k, at_seq)
        return _rank(hits)[:k]

    def _as_columns(
        self, session: Session, vector: Vectors, k: int, at_seq: int | None
    ) -> list[Hit[FactColumns]]:
        """The SQL-checked lookup's hits, as retrieval gives them."""
        hits = self.nearest(session, vector, k, at_seq=at_seq)
        return [Hit(FactColumns.of(h.fact), h.score) for h in hits]

    def _cited_hits(
        self,
        session: Session,
        ids: npt.NDArray[np.int64],
        scores: npt.NDArray[np.float32],
        at_seq: int | None,
    ) -> list[Hit[FactColumns]]:
        """Hits for ``ids`` valid at ``at_seq``, read with the columns a citation needs."""
        if len(ids) == 0:
            return []
        score_of = {int(i): float(s) for i, s in zip(ids, scores, strict=True)}
        rows = session.connection().execute(_CITED, {"ids": list(score_of)}).all()
        hits = []
        for fid, text, lineage, doc_pk, start, end, doc_id, title, url, published in rows:
            if _valid(start, end, at_seq):
                fact = FactColumns(fid, text, lineage, doc_pk, start, end)
                citation = Citation.of(doc_id, title, url, published)
                hits.append(Hit(fact, score_of[fid], citation))
        return hits

    def nearest(
        self, session: Session, vector: Vectors, k: int, *, at_seq: int | None = None
    ) -> list[Hit[Fact]]:
        """The ``k`` valid facts nearest ``vector``, best first, as rows of the session
        (the pipeline's lookup: what the open transaction changed counts)."""
        total = len(self.index)
        fetch = max(4 * k, 32)
        while True:
            ids, scores = self.index.search(vector, fetch)
            hits = self._valid_hits(session, ids, scores, at_seq)
            if len(hits) >= k or fetch >= total:
                return _rank(hits)[:k]
            fetch *= 4

    def within(
        self, session: Session, vector: Vectors, radius: float, *, at_seq: int | None = None
    ) -> list[Hit[Fact]]:
        """Every valid fact at cosine ``radius`` or closer, best first."""
        ids, scores = self.index.within(vector, radius)
        return _rank(self._valid_hits(session, ids, scores, at_seq))

    def _valid_hits(
        self,
        session: Session,
        ids: npt.NDArray[np.int64],
        scores: npt.NDArray[np.float32],
        at_seq: int | None,
    ) -> list[Hit[Fact]]:
        if len(ids) == 0:
            return []
        score_of = {int(i): float(s) for i, s in zip(ids, scores, strict=True)}
        hits: list[Hit[Fact]] = []
        keys = list(score_of)
        for start in range(0, len(keys), 500):
            # By primary key, validity checked here: SQL planners walk the validity
            # index for "valid_until IS NULL AND id IN (...)", every current fact.
            query = select(Fact).where(Fact.id.in_(keys[start : start + 500]))
            hits += [
                Hit(fact, score_of[fact.id])
                for fact in session.scalars(query)
                if _valid(fact.valid_from, fact.valid_until, at_seq)
            ]
        return hits

    # -- keeping the index in step with SQL --------------------------------------------
    def sync(self, session: Session) -> tuple[int, int]:
        """Make the index hold exactly the fact versions in SQL, as of the state the
        session's transaction reads (:attr:`synced` then); returns (added, removed)."""
        state = store_state(session)
        if state is not None and state in (self.synced, self.index.state):
            self.synced = state
            return 0, 0
        in_sql = np.fromiter(session.scalars(select(Fact.id)), dtype=np.int64)
        in_index = self.index.ids()
        extra = np.setdiff1d(in_index, in_sql)
        missing = np.setdiff1d(in_sql, in_index)
        self.index.remove(extra)
        for start in range(0, len(missing), 2000):
            chunk = [int(i) for i in missing[start : start + 2000]]
            facts = list(session.scalars(select(Fact).where(Fact.id.in_(chunk))))
            self.add_facts(session, facts)
        self.synced = state
        return len(missing), len(extra)

    def save(self, session: Session) -> None:
        """Persist the index stamped with the store state it now reflects."""
        state = store_state(session)
        self.index.save(state or "")
        self.synced = state


def cached_vectors(
    session: Session, model_id: str, hashes: Sequence[str]
) -> dict[str, npt.NDArray[np.float32]]:
    """The embedding cache's vectors of ``model_id`` for these text hashes (absent
    ones are left out)."""
    out: dict[str, npt.NDArray[np.float32]] = {}
    unique = list(set(hashes))
    for start in range(0, len(unique), 500):
        rows = session.execute(
            select(Embedding.text_hash, Embedding.vector).where(
                Embedding.model == model_id,
                Embedding.text_hash.in_(unique[start : start + 500]),
            )
        )
        for text_hash, blob in rows:
            out[text_hash] = np.frombuffer(blob, dtype=np.float32)
    return out


def state_token(session: Session) -> str | None:
    """The store state (:func:`store_state`), read past the ORM: one cheap query, for
    the read path's check that the index is current."""
    token = session.connection().execute(_STATE).scalar()
    return None if token is None else str(token)


def store_state(session: Session) -> str | None:
    """A token that changes with every committed write."""
    row = session.get(Meta, STATE_KEY)
    return row.value if row else None


def bump_state(session: Session) -> None:
    """Mark a write: the index must be saved (or caught up) to match it."""
    row = session.get(Meta, STATE_KEY)
    token = uuid.uuid4().hex
    if row is None:
        session.add(Meta(key=STATE_KEY, value=token))
    else:
        row.value = token
