"""A large store built without the LLM, for retrieval latency: synthetic documents
and fact versions inserted straight into SQL, with their vectors in the embedding
cache, so that opening the knowledge base builds the index as it would for a
store ingested the slow way.

One document holds ``FACTS_PER_DOC`` facts; a tenth of the versions are closed
(retired by a later document), as in a store with history, so that retrieval
filters by validity as it does in use.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import insert

from benchmarks.names import CITY, COMPANY, FIRST, INDUSTRY, LAST, ROLES
from kbase.embed.base import Embedder, Vectors
from kbase.hashing import content_hash
from kbase.kb import KnowledgeBase
from kbase.store.models import Document, Embedding, Evidence, Fact
from kbase.vectors import bump_state

FACTS_PER_DOC = 10
CLOSED_FRACTION = 0.1
START = datetime(2015, 1, 1)

_TEMPLATES = (
    "{p} is the {r} of {c}.",
    "{p} joined {c} as {r} in {y}.",
    "{c} is based in {t} and employs {n} people.",
    "{p} left {c} in {y}.",
    "{c} opened an office in {t} in {y}.",
    "{p} was born in {t}.",
    "{c} reported revenue of {n} million euros in {y}.",
    "{p} previously worked as {r} at {c}.",
)
_QUESTIONS = (
    "Who is the {r} of {c}?",
    "Where is {c} based?",
    "Which company does {p} work for?",
    "When did {p} join {c}?",
    "How many people does {c} employ?",
)


def _fill(rng: random.Random, pattern: str) -> str:
    return pattern.format(
        p=f"{rng.choice(FIRST)} {rng.choice(LAST)}",
        c=f"{rng.choice(COMPANY)} {rng.choice(INDUSTRY)}",
        r=rng.choice(ROLES),
        t=rng.choice(CITY),
        y=rng.randint(1990, 2024),
        n=rng.randint(20, 9000),
    )


def fact_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct synthetic fact sentences, the same for a seed."""
    rng = random.Random(seed)
    seen: dict[str, None] = {}
    while len(seen) < n:
        seen.setdefault(_fill(rng, rng.choice(_TEMPLATES)), None)
    return list(seen)


def query_texts(n: int, seed: int = 1) -> list[str]:
    """``n`` synthetic questions in the style of the facts."""
    rng = random.Random(seed)
    return [_fill(rng, rng.choice(_QUESTIONS)) for _ in range(n)]


def random_unit_vectors(n: int, dim: int, seed: int = 0) -> Vectors:
    """Gaussian vectors scaled to norm 1 (the stand-in when embedding is too slow)."""
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def populate(kb: KnowledgeBase, texts: list[str], vectors: Vectors, embedder: Embedder) -> None:
    """Insert documents, facts, evidence and cached vectors for ``texts`` into an
    empty knowledge base and mark the store changed (the index catches up on use)."""
    rng = random.Random(len(texts))
    n_docs = (len(texts) + FACTS_PER_DOC - 1) // FACTS_PER_DOC
    step = timedelta(hours=6)
    documents, facts, evidence = [], [], []
    for d in range(n_docs):
        body = texts[d * FACTS_PER_DOC : (d + 1) * FACTS_PER_DOC]
        text = " ".join(body)
        documents.append(
            {
                "pk": d + 1,
                "doc_id": f"synthetic-{d + 1}",
                "seq": d + 1,
                "source": "synthetic",
                "url": None,
                "title": f"Synthetic document {d + 1}",
                "published": START + d * step,
                "content_hash": content_hash(text),
                "text": text,
                "ingested_at": START + d * step,
            }
        )
    for i, text in enumerate(texts):
        fact_id, seq = i + 1, i // FACTS_PER_DOC + 1
        closed_at = None
        if seq < n_docs and rng.random() < CLOSED_FRACTION:
            closed_at = rng.randint(seq + 1, n_docs)
        facts.append(
            {
                "id": fact_id,
                "lineage_id": fact_id,
                "text": text,
                "text_hash": content_hash(text),
                "document_pk": seq,
                "chunk_idx": 0,
                "valid_from": seq,
                "valid_until": closed_at,
                "closed_by_pk": closed_at,
                "close_reason": "retired" if closed_at else None,
                "replaces_id": None,
            }
        )
        evidence.append({"fact_id": fact_id, "document_pk": seq, "seq": seq, "relation": "created"})
        if closed_at:
            evidence.append(
                {
                    "fact_id": fact_id,
                    "document_pk": closed_at,
                    "seq": closed_at,
                    "relation": "retired",
                }
            )
    embeddings = [
        {"model": embedder.model_id, "text_hash": f["text_hash"], "vector": v.tobytes()}
        for f, v in zip(facts, np.asarray(vectors, dtype=np.float32), strict=True)
    ]
    with kb.runtime.session() as session, session.begin():
        for model, rows in (
            (Document, documents),
            (Fact, facts),
            (Evidence, evidence),
            (Embedding, embeddings),
        ):
            for start in range(0, len(rows), 5000):
                session.execute(insert(model), rows[start : start + 5000])
        bump_state(session)


def middle_date(n_facts: int) -> datetime:
    """The publication date of the middle document of a store of ``n_facts``."""
    n_docs = (n_facts + FACTS_PER_DOC - 1) // FACTS_PER_DOC
    return START + (n_docs // 2) * timedelta(hours=6)
