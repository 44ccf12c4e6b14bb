"""Checks that a store is what its ingest log says it should be.

- :func:`verify_index`: the vector index file holds exactly one vector per fact
  version in SQL, and each is the cached embedding of the version's text.
- :func:`verify_deep`: the ingest log, replayed into an empty temporary SQLite
  store with the same settings, gives the same canonical state
  (:mod:`kbase.fingerprint`). The replay answers every model request from the
  store's record and every embedding from its cache, so it needs no model: a
  request the record does not hold is an error, not a call.

Both return a list of problems, empty when the store is consistent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import numpy.typing as npt
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from kbase.embed.base import Embedder, Vectors
from kbase.errors import ModelError, StoreError
from kbase.fingerprint import describe, differences
from kbase.hashing import content_hash
from kbase.index.faiss_index import FaissIndex
from kbase.llm.base import LLMBackend, LLMRequest, LLMResponse
from kbase.locking import scratch_folder
from kbase.ops.ingest import ingest
from kbase.reports import VerifyReport
from kbase.runtime import Runtime
from kbase.sources.base import SourceDocument
from kbase.store.db import sqlite_url
from kbase.store.models import (
    Document,
    Fact,
    FewshotExample,
    FewshotExampleDocument,
    LLMRecord,
    LLMRecordUse,
)
from kbase.vectors import cached_vectors, store_state

Vector = npt.NDArray[np.float32]

#: At most this many ids are named per kind of index problem.
SHOWN = 10


def _ids(ids: Sequence[int]) -> str:
    shown = ", ".join(str(i) for i in sorted(ids)[:SHOWN])
    return shown + (f" and {len(ids) - SHOWN} more" if len(ids) > SHOWN else "")


def verify_index(rt: Runtime) -> list[str]:
    """Problems between the index file and SQL: missing, extra or duplicate vectors,
    vectors that differ from the cached embedding of their fact's text, and an index
    stamped with another store state."""
    try:
        on_disk = FaissIndex(rt.folder / "index", rt.embedder.dim, strict=True)
    except StoreError as exc:
        return [str(exc)]
    with rt.session() as session, session.begin():
        facts = dict(session.execute(select(Fact.id, Fact.text_hash)).tuples().all())
        state = store_state(session)
        if not on_disk.loaded:
            return [f"the vector index {on_disk.path} is missing"] if facts else []
        ids, stored = on_disk.vectors()
        cached = cached_vectors(session, rt.embedder.model_id, list(facts.values()))
    problems: list[str] = []
    if (on_disk.state or None) != (state or None):
        problems.append("the vector index was saved for another store state (it is behind SQL)")
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        problems.append(f"fact ids with several vectors: {_ids(unique[counts > 1].tolist())}")
    extra = sorted(set(ids.tolist()) - facts.keys())
    if extra:
        problems.append(f"vectors with no fact version in SQL: {_ids(extra)}")
    missing = sorted(facts.keys() - set(ids.tolist()))
    if missing:
        problems.append(f"fact versions with no vector: {_ids(missing)}")
    uncached, different = [], []
    for row, fact_id in enumerate(ids.tolist()):
        if fact_id not in facts:
            continue
        vector = cached.get(facts[fact_id])
        if vector is None:
            uncached.append(fact_id)
        elif stored[row].astype(np.float32).tobytes() != vector.tobytes():
            different.append(fact_id)
    if uncached:
        problems.append(f"fact versions whose text has no cached embedding: {_ids(uncached)}")
    if different:
        problems.append(f"vectors that differ from their text's embedding: {_ids(different)}")
    return problems


class _RefusingBackend(LLMBackend):
    """A backend for a pure replay: every request must have a recorded answer."""

    model_id = "verify-deep"

    def __init__(self, *, supports_logprobs: bool) -> None:
        self.supports_logprobs = supports_logprobs

    def generate(self, request: LLMRequest) -> LLMResponse:
        raise ModelError(
            f"verify --deep needs every answer recorded: the replay asked a {request.task!r} "
            "request the store has no answer for (an answer was removed, or the prompts, "
            "settings or model changed since ingest); `kb verify` without --deep needs none"
        )

    def score(self, request: LLMRequest) -> LLMResponse:
        return self.generate(request)


class _CacheFirstEmbedder(Embedder):
    """The store's cached vectors, bit for bit; only uncached texts reach ``inner``."""

    def __init__(self, inner: Embedder, lookup: Callable[[list[str]], dict[str, Vector]]) -> None:
        self.inner = inner
        self.lookup = lookup
        self.model_id = inner.model_id
        self.dim = inner.dim

    def embed(self, texts: Sequence[str]) -> Vectors:
        # Overridden, not just embed_batch: cached vectors must not be renormalised.
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        hashes = [content_hash(t) for t in texts]
        found = self.lookup(hashes)
        missing = {h: t for h, t in zip(hashes, texts, strict=True) if h not in found}
        if missing:
            fresh = self.inner.embed(list(missing.values()))
            found.update(zip(missing, fresh, strict=True))
        return np.stack([found[h] for h in hashes]).astype(np.float32)

    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        return self.embed(texts)


def _scored_verdicts(session: Session) -> bool:
    """Whether ingest judged candidates by scores (a backend with log-probabilities):
    the task of the latest document's verdict requests says so."""
    row = session.execute(
        select(LLMRecord.task)
        .join(LLMRecordUse, LLMRecordUse.key == LLMRecord.key)
        .join(Document, Document.pk == LLMRecordUse.document_pk)
        .where(LLMRecord.task.in_(("verdict", "verdicts")), LLMRecordUse.role == "ingest")
        .order_by(Document.seq.desc())
        .limit(1)
    ).first()
    return row is not None and row[0] == "verdict"


def _ingest_log(session: Session) -> Iterator[SourceDocument]:
    for pk in list(session.scalars(select(Document.pk).order_by(Document.seq))):
        doc = session.get_one(Document, pk)
        yield SourceDocument(
            doc_id=doc.doc_id,
            text=doc.text,
            source=doc.source,
            title=doc.title,
            url=doc.url,
            published=doc.published,
            received=doc.ingested_at,
        )
        session.expunge(doc)


def _copy_rows(source: Session, target: Session, model: type[LLMRecord | FewshotExample]) -> None:
    rows = source.execute(select(model.__table__)).mappings()
    batch: list[dict[str, object]] = []
    for row in rows:
        batch.append(dict(row))
        if len(batch) == 1000:
            target.execute(insert(model), batch)
            batch = []
    if batch:
        target.execute(insert(model), batch)


def _copy_example_sources(source: Session, target: Session) -> None:
    """Links from stored examples to their documents, by doc_id (pks differ)."""
    rows = source.execute(
        select(FewshotExampleDocument.example_id, Document.doc_id).join(
            Document, Document.pk == FewshotExampleDocument.document_pk
        )
    ).all()
    pk_of = dict(target.execute(select(Document.doc_id, Document.pk)).tuples().all())
    for example_id, doc_id in rows:
        target.add(FewshotExampleDocument(example_id=example_id, document_pk=pk_of[doc_id]))


def verify_deep(rt: Runtime) -> list[str]:
    """Differences between the store and a replay of its ingest log, part by part.

    Raises :class:`ModelError` when the replay asks a request the store holds no
    answer for. The temporary store (SQLite, in a scratch folder of the knowledge
    base's folder) is deleted afterwards.
    """
    # The rebuild is a SQLite store in a scratch folder inside the knowledge base's:
    # never the real database (whatever $KBASE_DATABASE_URL names), and a kill -9
    # leaves its copy where the next open cleans it, not in the system's temp folder.
    with (
        scratch_folder(rt.folder, "verify") as folder,
        Session(rt.engine) as source,
        source.begin(),
    ):
        mine = describe(source)
        model = rt.embedder.model_id
        embedder = _CacheFirstEmbedder(rt.embedder, lambda hs: cached_vectors(source, model, hs))
        backend = _RefusingBackend(supports_logprobs=_scored_verdicts(source))
        rebuilt = Runtime.open(
            folder / "kb",
            database_url=sqlite_url(folder / "kb"),
            settings=rt.settings,
            embedder=embedder,
            backend=lambda: backend,
        )
        try:
            with rebuilt.session() as target, target.begin():
                _copy_rows(source, target, LLMRecord)
                _copy_rows(source, target, FewshotExample)
            ingest(rebuilt, _ingest_log(source), keep_incomplete=True)
            with rebuilt.session() as target, target.begin():
                _copy_example_sources(source, target)
                target.flush()
                theirs = describe(target)
        finally:
            rebuilt.close()
    return differences(mine, theirs, names=("the store", "the rebuild"))


def verify(rt: Runtime, *, deep: bool = False) -> VerifyReport:
    """Check the index against SQL (caught up first, as every command does) and, when
    ``deep``, the store against a replay of its ingest log."""
    rt.index_size()
    problems = verify_index(rt)
    if deep:
        problems += verify_deep(rt)
    return VerifyReport(problems)
