"""Every result type the library returns and the CLI, the API and the tests read.

A leaf: it imports nothing of kbase, so every layer can build and return these.
``to_dict()`` gives the JSON shape ``kb ... --json`` prints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


def iso_date(value: datetime | None) -> str | None:
    """The date part of a timestamp, as YYYY-MM-DD (None stays None)."""
    return value.date().isoformat() if value else None


def iso_time(value: datetime | None) -> str | None:
    """A timestamp to the second, as YYYY-MM-DDTHH:MM:SS (None stays None)."""
    return value.replace(microsecond=0).isoformat() if value else None


#: The id and accounting columns of a document, in the order ``--json`` prints them.
ACCOUNTING_KEYS = (
    "doc_id",
    "llm_calls",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "model_seconds",
)


@dataclass(frozen=True)
class Citation:
    """A document an answer or a fact points to."""

    doc_id: str
    title: str | None
    url: str | None
    published: str | None

    @classmethod
    def of(
        cls, doc_id: str, title: str | None, url: str | None, published: datetime | None
    ) -> Citation:
        return cls(doc_id, title, url, iso_date(published))


@dataclass(frozen=True)
class FactHit:
    """A retrieved fact version with its score and provenance."""

    id: int
    text: str
    doc_id: str
    score: float
    citation: Citation

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "doc_id": self.doc_id,
            "score": round(self.score, 4),
            "citation": asdict(self.citation),
        }


@dataclass(frozen=True)
class Answer:
    """The model's answer, the documents it cites and the facts it was shown. When
    ``known`` is false the knowledge base does not know: it cites nothing and shows
    no facts."""

    answer: str
    citations: list[Citation]
    facts: list[FactHit]
    known: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "known": self.known,
            "answer": self.answer,
            "citations": [asdict(c) for c in self.citations],
            "facts": [{"id": f.id, "text": f.text, "doc_id": f.doc_id} for f in self.facts],
        }


@dataclass
class DocReport:
    """What ingesting one document did."""

    doc_id: str
    seq: int
    chunks: int = 0
    facts_created: int = 0
    facts_reinforced: int = 0
    facts_retired: int = 0
    facts_rewritten: int = 0
    chunks_skipped: int = 0
    #: 1, or more when the document arrived again with other content.
    version: int = 1
    #: Stored documents published after it when it arrived (a late article).
    later_documents: int = 0
    #: Of those, how many were replayed because they could have seen its facts.
    documents_replayed: int = 0
    llm_calls: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    model_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class IngestReport:
    """What an ingest stored, and what it asked of the LLM in all."""

    stored: list[DocReport] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    #: Ids that arrived with other content: the old version was forgotten exactly.
    updated: list[str] = field(default_factory=list)
    #: Later documents replayed to place late or updated ones (answers from the
    #: record where the request is unchanged).
    documents_replayed: int = 0
    #: Ids left out because they were forgotten (polling a feed only).
    forgotten: list[str] = field(default_factory=list)
    #: Stopped on request before every document was stored (``kb watch``).
    stopped: bool = False
    #: Documents not stored because the model's answers for a chunk never fitted
    #: (``chunks_skipped``): nothing of them is kept, and the next ingest retries them.
    failed: list[DocReport] = field(default_factory=list)
    llm_calls: int = 0
    model_calls: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    model_seconds: float = 0.0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ForgetReport:
    """What forgetting documents removed, restored and replayed."""

    forgotten: list[str]
    #: Ids asked for that were not stored (``missing_ok``): nothing to do for them.
    missing: list[str] = field(default_factory=list)
    documents_replayed: int = 0
    model_calls: int = 0
    replayed_calls: int = 0
    facts_removed: int = 0
    facts_restored: int = 0
    fewshot_changed: bool = False
    #: Whether polling skips these ids from now on (not with ``allow_again``).
    blocked: bool = True
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CurationReport:
    """What a change of the few-shot example pool did."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    selection_changed: bool = False
    documents_replayed: int = 0
    model_calls: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DocumentSummary:
    """A stored document: its identity, provenance and what ingesting it cost."""

    doc_id: str
    seq: int
    title: str | None
    url: str | None
    published: str | None
    source: str
    llm_calls: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    model_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def accounting(self) -> dict[str, Any]:
        """The id and the LLM accounting only (``kb stats --documents``)."""
        keys = ACCOUNTING_KEYS
        data = asdict(self)
        return {k: data[k] for k in keys}


@dataclass(frozen=True)
class Edit:
    """One fact a document created, reinforced, retired or rewrote."""

    relation: str
    fact_id: int
    text: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DocumentDetail:
    """A stored document with its text, when the store received it, and the edits
    it caused."""

    summary: DocumentSummary
    text: str
    edits: list[Edit]
    #: When this version was received (ISO date and time, UTC).
    ingested_at: str
    #: 1, or more when the document arrived again with other content.
    version: int = 1
    #: When the first version was received, for an updated document.
    first_ingested_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary.to_dict(),
            "ingested_at": self.ingested_at,
            "version": self.version,
            "first_ingested_at": self.first_ingested_at,
            "text": self.text,
            "edits": [e.to_dict() for e in self.edits],
        }


@dataclass(frozen=True)
class FactRow:
    """A fact version in a listing."""

    id: int
    text: str
    doc_id: str
    current: bool
    close_reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DatedDocument:
    """Where a fact version starts or ends: the document and its date."""

    seq: int
    doc_id: str
    published: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EvidenceRow:
    """A document that created, reinforced, retired or rewrote a fact version."""

    relation: str
    doc_id: str
    published: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FactVersion:
    """One version of a fact, the documents behind it and what closed it."""

    id: int
    text: str
    current: bool
    valid_from: DatedDocument
    valid_until: DatedDocument | None
    created_by: str
    closed_by: str | None
    close_reason: str | None
    replaces: int | None
    evidence: list[EvidenceRow]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "current": self.current,
            "valid_from": self.valid_from.to_dict(),
            "valid_until": self.valid_until.to_dict() if self.valid_until else None,
            "created_by": self.created_by,
            "closed_by": self.closed_by,
            "close_reason": self.close_reason,
            "replaces": self.replaces,
            "evidence": [e.to_dict() for e in self.evidence],
        }


@dataclass(frozen=True)
class Stats:
    """Totals of a knowledge base."""

    documents: int
    facts_current: int
    facts_closed: int
    ingest_llm_calls: int
    ingest_prompt_tokens: int
    ingest_cached_tokens: int
    ingest_completion_tokens: int
    ingest_model_seconds: float
    recorded_answers: int
    recorded_prompt_tokens: int
    recorded_completion_tokens: int
    index_vectors: int
    strategy: str
    llm: str
    #: Each document's accounting, when asked for.
    per_document: list[DocumentSummary] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["per_document"]
        if self.per_document is not None:
            data["per_document"] = [d.accounting() for d in self.per_document]
        return data


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify`` found wrong (nothing, when ``ok``)."""

    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "problems": list(self.problems)}


@dataclass(frozen=True)
class ExampleRow:
    """A few-shot example in the pool, and whether prompts show it now."""

    id: str
    task: str
    origin: str
    selected: bool
    documents: list[str]
    user: str
    assistant: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FeedRow:
    """A subscribed feed: how its last fetch went and what came of it."""

    url: str
    title: str | None
    added_at: str | None
    last_fetch_at: str | None
    #: ``new`` (a body was read), ``not modified`` (304), ``failed``, ``interrupted``.
    last_status: str | None
    last_ok_at: str | None
    error: str | None
    #: Fetches that failed in a row (0 after a success).
    failures: int
    #: When the server allows the next fetch (HTTP 429/503 Retry-After).
    retry_at: str | None
    #: Stored documents from this feed, and the one received last.
    documents: int = 0
    last_new_at: str | None = None
    last_new_id: str | None = None
    last_new_title: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FeedsChange:
    """What ``feeds add`` or ``feeds rm`` changed."""

    added: list[str] = field(default_factory=list)
    #: Given to ``add`` but subscribed already.
    already: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FeedPoll:
    """One feed's part of a poll."""

    url: str
    #: ``stored`` (a body was read and ingested), ``not modified`` (HTTP 304),
    #: ``failed``, ``waiting`` (Retry-After not over), ``busy`` (another process is
    #: polling it), ``interrupted`` (stopped before its items were all ingested).
    status: str
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    #: Items skipped because their documents were forgotten.
    forgotten: int = 0
    #: Items another feed of the same poll listed first (same id).
    duplicates: int = 0
    error: str | None = None
    #: The feed's new address, after a permanent redirect.
    moved_to: str | None = None
    retry_at: str | None = None
    llm_calls: int = 0
    model_calls: int = 0
    documents_replayed: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PollReport:
    """What polling every feed once did."""

    feeds: list[FeedPoll] = field(default_factory=list)
    #: Stopped (SIGINT, SIGTERM) before every feed was done.
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def new(self) -> int:
        return sum(f.new for f in self.feeds)

    @property
    def updated(self) -> int:
        return sum(f.updated for f in self.feeds)

    @property
    def failed(self) -> list[FeedPoll]:
        return [f for f in self.feeds if f.status == "failed"]

    @property
    def all_failed(self) -> bool:
        """Whether every feed failed (and there was one): the exit status of ``kb poll``."""
        return bool(self.feeds) and len(self.failed) == len(self.feeds)

    def to_dict(self) -> dict[str, Any]:
        return {
            "feeds": [f.to_dict() for f in self.feeds],
            "new": self.new,
            "updated": self.updated,
            "failed": len(self.failed),
            "all_failed": self.all_failed,
            "interrupted": self.interrupted,
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class PollProgress:
    """How far a poll is: ``phase`` ``fetch`` (feeds fetched of ``total``) or
    ``ingest`` (items ingested of ``total``), and the items stored so far."""

    phase: str
    done: int
    total: int
    stored: int
    feed: str
