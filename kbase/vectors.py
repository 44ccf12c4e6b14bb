"""Fact vectors: cached embeddings in SQL, an index derived from them, and
retrieval that sees only the fact versions valid at the asked time.

The index holds every fact version (current and closed), so questions "as of" a
past date search the same index; validity is filtered in SQL, the truth.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from kbase.embed.base import Embedder, Vectors
from kbase.hashing import content_hash
from kbase.index.base import VectorIndex
from kbase.store.models import Embedding, Fact, Meta

STATE_KEY = "state"


@dataclass(frozen=True)
class Hit:
    fact: Fact
    score: float


def valid_at(seq: int | None) -> Select[Fact]:
    """Fact versions valid after document ``seq`` (``None``: now)."""
    if seq is None:
        return select(Fact).where(Fact.valid_until.is_(None))
    return select(Fact).where(
        and_(Fact.valid_from <= seq, or_(Fact.valid_until.is_(None), Fact.valid_until > seq))
    )


def _rank(hits: list[Hit]) -> list[Hit]:
    # Scores first, then text: never row ids, which differ between a store and its replay.
    return sorted(hits, key=lambda h: (-h.score, h.fact.text, h.fact.valid_from))


class FactVectors:
    """Embeds texts through the cache and retrieves valid facts from the index."""

    def __init__(self, embedder: Embedder, index: VectorIndex) -> None:
        self.embedder = embedder
        self.index = index
        #: The store state the in-memory index was last made to match.
        self.synced: str | None = None

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

    def nearest(
        self, session: Session, vector: Vectors, k: int, *, at_seq: int | None = None
    ) -> list[Hit]:
        """The ``k`` valid facts nearest ``vector``, best first."""
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
    ) -> list[Hit]:
        """Every valid fact at cosine ``radius`` or closer, best first."""
        ids, scores = self.index.within(vector, radius)
        return _rank(self._valid_hits(session, ids, scores, at_seq))

    def _valid_hits(
        self,
        session: Session,
        ids: npt.NDArray[np.int64],
        scores: npt.NDArray[np.float32],
        at_seq: int | None,
    ) -> list[Hit]:
        if len(ids) == 0:
            return []
        score_of = {int(i): float(s) for i, s in zip(ids, scores, strict=True)}
        hits: list[Hit] = []
        keys = list(score_of)
        for start in range(0, len(keys), 500):
            query = valid_at(at_seq).where(Fact.id.in_(keys[start : start + 500]))
            hits += [Hit(fact, score_of[fact.id]) for fact in session.scalars(query)]
        return hits

    # -- keeping the index in step with SQL --------------------------------------------
    def sync(self, session: Session) -> tuple[int, int]:
        """Make the index hold exactly the fact versions in SQL; returns (added, removed)."""
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
        return len(missing), len(extra)

    def save(self, session: Session) -> None:
        """Persist the index stamped with the store state it now reflects."""
        state = store_state(session)
        self.index.save(state or "")
        self.synced = state

    def stamp_is_stale(self, session: Session) -> bool:
        """Whether the index file is stamped with another state than the store's."""
        return (self.index.state or None) != store_state(session)


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
