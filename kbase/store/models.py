"""The relational schema: SQL is the truth, everything else (vectors) is derived.

- ``documents`` is the ingest log: one row per document, ``seq`` its position.
- ``facts`` are versions. A version is valid from the ``seq`` of the document that
  created it until the ``seq`` of the one that closed it (retired or rewrote it);
  a rewrite is a new version whose ``replaces_id`` links the old one, and every
  version of one fact shares its ``lineage_id``. "The store as of seq s" is a
  query over these intervals, not a snapshot, which is what makes exact
  forgetting a rollback plus a replay.
- ``evidence`` records every document that created, reinforced, retired or
  rewrote a version.
- ``llm_records`` are recorded model answers keyed by the hash of the exact
  request; ``llm_record_uses`` says which documents each answer belongs to.
- ``retrievals`` records every query a document's ingest ran against the store and
  the radius inside which its result was decided, and ``name_lookups`` every name
  it looked facts up by, so forgetting can tell which later documents could have
  seen a difference.
- ``embeddings`` caches vectors by model and text hash.
- ``feeds`` are the subscriptions ``kb poll`` fetches, with each feed's
  conditional-request validators and the outcome of its last fetch.
- ``forgotten_ids`` holds a keyed hash (HMAC-SHA256, key in ``meta``) of the id
  of each document forgotten so that polling does not bring it back.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite needs plain INTEGER for rowid aliasing; PostgreSQL gets BIGINT.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Meta(Base):
    """Settings fixed at ``kb init`` (strategy, models, seed) and store counters."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = ({"sqlite_autoincrement": True},)

    pk: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    doc_id: Mapped[str] = mapped_column(String(512), unique=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    source: Mapped[str] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    published: Mapped[datetime | None] = mapped_column(DateTime)
    content_hash: Mapped[str] = mapped_column(String(80))
    text: Mapped[str] = mapped_column(Text)
    #: When this version was received; an undated document takes its place by it.
    ingested_at: Mapped[datetime] = mapped_column(DateTime)
    #: 1, then one more each time the document arrived again with other content.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    #: When its first version was received (None: this is the first).
    first_ingested_at: Mapped[datetime | None] = mapped_column(DateTime)
    llm_calls: Mapped[int] = mapped_column(Integer, default=0)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    model_seconds: Mapped[float] = mapped_column(Float, default=0.0)


class Chunk(Base):
    __tablename__ = "chunks"

    document_pk: Mapped[int] = mapped_column(
        ForeignKey("documents.pk", ondelete="CASCADE"), primary_key=True
    )
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    text_hash: Mapped[str] = mapped_column(String(80))


class Fact(Base):
    __tablename__ = "facts"
    # Ids are never reused (the vector index is keyed by them).
    __table_args__ = (
        Index("ix_facts_valid", "valid_until", "valid_from"),
        Index("ix_facts_lineage", "lineage_id"),
        Index("ix_facts_document", "document_pk"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    lineage_id: Mapped[int | None] = mapped_column(Id)
    text: Mapped[str] = mapped_column(Text)
    text_hash: Mapped[str] = mapped_column(String(80))
    document_pk: Mapped[int] = mapped_column(ForeignKey("documents.pk"))
    chunk_idx: Mapped[int] = mapped_column(Integer)
    valid_from: Mapped[int] = mapped_column(Integer)
    valid_until: Mapped[int | None] = mapped_column(Integer)
    closed_by_pk: Mapped[int | None] = mapped_column(ForeignKey("documents.pk"))
    close_reason: Mapped[str | None] = mapped_column(String(16))
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("facts.id"))


class Evidence(Base):
    __tablename__ = "evidence"
    __table_args__ = (
        Index("ix_evidence_fact", "fact_id"),
        Index("ix_evidence_document", "document_pk"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    fact_id: Mapped[int] = mapped_column(ForeignKey("facts.id", ondelete="CASCADE"))
    document_pk: Mapped[int] = mapped_column(ForeignKey("documents.pk", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    relation: Mapped[str] = mapped_column(String(16))


class LLMRecord(Base):
    __tablename__ = "llm_records"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    model: Mapped[str] = mapped_column(String(200))
    task: Mapped[str] = mapped_column(String(32))
    request: Mapped[str] = mapped_column(Text)
    response: Mapped[str] = mapped_column(Text)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class LLMRecordUse(Base):
    """``role`` is ``ingest`` (the document's ingest asked it) or ``context`` (the
    document's text appears in a question-time prompt)."""

    __tablename__ = "llm_record_uses"
    __table_args__ = (Index("ix_uses_document", "document_pk"),)

    key: Mapped[str] = mapped_column(
        ForeignKey("llm_records.key", ondelete="CASCADE"), primary_key=True
    )
    document_pk: Mapped[int] = mapped_column(
        ForeignKey("documents.pk", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(16), primary_key=True)


class Retrieval(Base):
    """A query a document's ingest ran: any fact within ``radius`` (cosine) of the
    query text's vector could have changed the result."""

    __tablename__ = "retrievals"
    __table_args__ = (Index("ix_retrievals_document", "document_pk"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    document_pk: Mapped[int] = mapped_column(ForeignKey("documents.pk", ondelete="CASCADE"))
    text_hash: Mapped[str] = mapped_column(String(80))
    radius: Mapped[float] = mapped_column(Float)


class NameLookup(Base):
    """A name a document's ingest looked facts up by: any fact whose words hold the
    name could have changed the result. The name is kept as a hash
    (:func:`kbase.hashing.content_hash` of :func:`kbase.pipeline.wording.name_key`),
    like a retrieval's query text."""

    __tablename__ = "name_lookups"
    __table_args__ = (Index("ix_name_lookups_document", "document_pk"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    document_pk: Mapped[int] = mapped_column(ForeignKey("documents.pk", ondelete="CASCADE"))
    name_hash: Mapped[str] = mapped_column(String(80))
    #: How many words the name has: the longest run of a fact's words to compare.
    words: Mapped[int] = mapped_column(Integer)


class Embedding(Base):
    __tablename__ = "embeddings"

    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    text_hash: Mapped[str] = mapped_column(String(80), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class FewshotExample(Base):
    """A few-shot example added by a user or recorded by a correction (the built-in
    ones live in code). ``user`` and ``assistant`` are the rendered turns."""

    __tablename__ = "fewshot_examples"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    task: Mapped[str] = mapped_column(String(32))
    origin: Mapped[str] = mapped_column(String(16))
    user: Mapped[str] = mapped_column(Text)
    assistant: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class FewshotExampleDocument(Base):
    """The documents an example was derived from: forgetting one removes the example."""

    __tablename__ = "fewshot_example_documents"

    example_id: Mapped[str] = mapped_column(
        ForeignKey("fewshot_examples.id", ondelete="CASCADE"), primary_key=True
    )
    document_pk: Mapped[int] = mapped_column(
        ForeignKey("documents.pk", ondelete="CASCADE"), primary_key=True
    )


class FewshotState(Base):
    """The retained state of each task's example selection (kbase.fewshot), and a
    signature of the pool it was fitted on."""

    __tablename__ = "fewshot_state"

    task: Mapped[str] = mapped_column(String(32), primary_key=True)
    pool_signature: Mapped[str] = mapped_column(String(80))
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Feed(Base):
    """A subscribed feed: ``kb poll`` fetches it, sending its ETag and Last-Modified.

    ``failures`` counts the fetches that failed in a row (0 after a success);
    ``retry_at`` is when the server allows the next fetch (HTTP 429/503
    Retry-After). Nothing here names a document: the last new item a listing
    shows is read from ``documents`` (their ``source`` is the feed's URL).
    """

    __tablename__ = "feeds"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(String(2048), unique=True)
    title: Mapped[str | None] = mapped_column(Text)
    added_at: Mapped[datetime] = mapped_column(DateTime)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    #: When it was last fetched (successfully or not) and what came of it.
    last_fetch_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_status: Mapped[str | None] = mapped_column(String(32))
    #: When a fetch last succeeded (200 or 304).
    last_ok_at: Mapped[datetime | None] = mapped_column(DateTime)
    error: Mapped[str | None] = mapped_column(Text)
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    retry_at: Mapped[datetime | None] = mapped_column(DateTime)


class ForgottenId(Base):
    """HMAC-SHA256 of a forgotten document's id, keyed by the knowledge base's own
    random key (``meta``, ``forget_key``): neither the id nor any text."""

    __tablename__ = "forgotten_ids"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
