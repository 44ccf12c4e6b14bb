"""A question's retrieval (``FactVectors.retrieve``: validity applied inside one index
search through a filter cached per store state, rows read by primary key with
their citation) gives what the SQL-checked lookup the pipeline uses gives, now
and as of a date, on the compressed layout a large store gets. (How the index
re-ranks fewer candidates is tested in test_index.py, its recall in
benchmarks/retrieval_scale.py.)"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from benchmarks import synthstore
from kbase.config import Settings
from kbase.embed.base import Embedder, Vectors
from kbase.hashing import content_hash
from kbase.index import faiss_index
from kbase.index.faiss_index import FaissIndex
from kbase.kb import KnowledgeBase
from kbase.llm.fake import world_llm
from kbase.store import queries
from kbase.store.models import Document
from kbase.vectors import bump_state

FACTS = 1500
DIM = 384  # the dimension kbase ships a codebook for


class ScatterEmbedder(Embedder):
    """A Gaussian unit vector per text, seeded by its hash: no two scores tie, so
    both lookups must agree exactly (ties at the k-th score are the index's to
    break, see kbase.index.base)."""

    model_id = "test-scatter"
    dim = DIM

    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        seeds = [int(content_hash(t)[-15:], 16) for t in texts]
        rows = [np.random.default_rng(seed).standard_normal(DIM) for seed in seeds]
        return np.array(rows, dtype=np.float32)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KnowledgeBase]:
    monkeypatch.setattr(faiss_index, "COMPRESS_FROM", 1000)
    # Every candidate re-ranked: both lookups are then exact, whatever they widen to.
    monkeypatch.setattr(faiss_index, "RERANK", FACTS)
    embedder = ScatterEmbedder()
    model = world_llm()
    kb = KnowledgeBase.open(
        tmp_path / "kb",
        settings=Settings(embedder="fake"),
        embedder=embedder,
        backend=lambda: model,
    )
    texts = synthstore.fact_texts(FACTS)
    synthstore.populate(kb, texts, embedder.embed(texts), embedder)
    yield kb
    kb.close()


def sql_checked(kb: KnowledgeBase, query: str, k: int, as_of: date | None) -> list[int]:
    rt = kb.runtime
    with rt.session() as session:
        vectors = rt.vectors(session)
        with session.begin():
            at_seq = queries.seq_as_of(session, as_of) if as_of else None
            if at_seq == 0:
                return []
            vector = rt.embedder.embed([query])[0]
            return [h.fact.id for h in vectors.nearest(session, vector, k, at_seq=at_seq)]


# Stored texts, so that each finds itself first where it is valid.
QUESTIONS = synthstore.fact_texts(FACTS)[::125]
MIDDLE = synthstore.middle_date(FACTS).date()
DATES = [None, MIDDLE, synthstore.START.date() + timedelta(days=3)]


def test_retrieval_agrees_with_the_sql_checked_lookup_on_the_compressed_layout(
    store: KnowledgeBase,
) -> None:
    with store.runtime.session() as session:
        index = store.runtime.vectors(session).index
    assert isinstance(index, FaissIndex) and index.compressed and len(index) == FACTS
    for as_of in DATES:
        for question in QUESTIONS:
            hits = store.search(question, k=8, as_of=as_of)
            assert [h.id for h in hits] == sql_checked(store, question, 8, as_of)
            assert len(hits) == 8


def test_retrieval_cites_each_facts_own_document(store: KnowledgeBase) -> None:
    hits = store.search(QUESTIONS[0], k=8, as_of=MIDDLE)

    def documents(session: Session) -> dict[str, tuple[str | None, int]]:
        return {d.doc_id: (d.title, d.seq) for d in session.query(Document)}

    known = store.runtime.read(documents)
    for hit in hits:
        title, seq = known[hit.doc_id]
        assert hit.citation.doc_id == hit.doc_id and hit.citation.title == title
        # A fact of synthetic document n is its fact number 10(n-1)+1 .. 10n.
        assert (hit.id - 1) // synthstore.FACTS_PER_DOC + 1 == seq
        assert hit.citation.published is not None
        assert date.fromisoformat(hit.citation.published) <= MIDDLE


def test_retrieval_before_the_first_document_finds_nothing(store: KnowledgeBase) -> None:
    assert store.search(QUESTIONS[0], k=8, as_of=date(2000, 1, 1)) == []


def test_retrieval_after_another_writer_changed_the_store_asks_sql(
    store: KnowledgeBase,
) -> None:
    """A fact retired behind the index's back (the state token moved, as another
    process's write moves it) is never retrieved: SQL decides until the next sync."""
    question = QUESTIONS[1]
    first = store.search(question, k=8)[0]
    vectors = store.runtime._vectors
    assert vectors is not None
    with store.runtime.session() as session, session.begin():
        from kbase.store.models import Fact

        fact = session.get(Fact, first.id)
        assert fact is not None
        fact.valid_until = 1 + (first.id - 1) // synthstore.FACTS_PER_DOC
        bump_state(session)
    synced = vectors.synced
    with store.runtime.session() as session, session.begin():
        vector = store.runtime.embedder.embed([question])[0]
        ids = [h.fact.id for h in vectors.retrieve(session, vector, 8)]
    assert vectors.synced == synced  # not caught up: this answer came from SQL
    assert first.id not in ids and len(ids) == 8
    assert first.id not in [h.id for h in store.search(question, k=8)]


def test_a_search_reads_the_state_token_and_the_cited_rows_alone(store: KnowledgeBase) -> None:
    """Once the store state's validity and the date's seq are cached, a question costs
    two statements: the state token, and the hits' rows with their citations."""
    for as_of in (None, MIDDLE):
        store.search(QUESTIONS[0], k=8, as_of=as_of)
    statements: list[str] = []

    def record(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(store.runtime.engine, "before_cursor_execute", record)
    try:
        for as_of in (None, MIDDLE):
            statements.clear()
            assert len(store.search(QUESTIONS[2], k=8, as_of=as_of)) == 8
            assert len(statements) == 2
            assert "FROM meta" in statements[0]
            assert "FROM facts JOIN documents" in statements[1]
    finally:
        event.remove(store.runtime.engine, "before_cursor_execute", record)
