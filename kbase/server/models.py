"""The shapes the HTTP API and the MCP tools take and give, as pydantic models.

Every output model mirrors a result of :mod:`kbase.reports`: ``Model.of(report)``
validates the report's ``to_dict()`` (the CLI's ``--json`` shape), so the API, the
MCP tools and ``kb ... --json`` give the same JSON. The models exist for the
schemas (OpenAPI, MCP tool output schemas): a key a report gains passes through
before its model declares it, and ``tests/test_server.py`` fails until it does.
"""

from __future__ import annotations

import json
from datetime import date
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from kbase.errors import InputError
from kbase.reports import Answer, FactHit, ForgetReport, VerifyReport
from kbase.sources import check_batch
from kbase.sources.base import SourceDocument
from kbase.sources.fields import storable
from kbase.sources.jsonl import read_jsonl

#: The ``source`` of documents ingested through the API and the MCP tools.
API_SOURCE = "api"


class _Out(BaseModel):
    """An output, built from a report's dict; keys it does not declare pass through."""

    model_config = ConfigDict(extra="allow")

    @classmethod
    def of(cls, data: dict[str, Any]) -> Self:
        return cls.model_validate(data)


# -- inputs ---------------------------------------------------------------------------
class AskIn(BaseModel):
    """A question, answered now or as of a date."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, description="The question.")
    as_of: date | None = Field(
        default=None, description="Answer from the knowledge base as it stood on this date."
    )
    k: int | None = Field(
        default=None, ge=1, le=100, description="Facts to retrieve (default: the kb's setting)."
    )


class DocumentIn(BaseModel):
    """A document to ingest (the fields of a JSONL line of ``kb ingest``)."""

    model_config = ConfigDict(extra="forbid")

    id: StrictStr | StrictInt = Field(description="Stable document id (a string or an integer).")
    text: StrictStr = Field(description="The document's text.")
    title: StrictStr | None = None
    url: StrictStr | None = None
    published: StrictStr | None = Field(
        default=None, description="Publication date: YYYY-MM-DD, ISO 8601 or RFC 822."
    )


class UrlIn(BaseModel):
    """A URL to fetch and ingest, as ``kb ingest URL`` does (under the URL policy:
    http(s) only, public addresses only unless the server allows private ones)."""

    model_config = ConfigDict(extra="forbid")

    url: StrictStr = Field(min_length=1, description="An http:// or https:// URL.")
    id: StrictStr | None = Field(
        default=None, description="The document's id (a source with one document only)."
    )


class FeedsIn(BaseModel):
    """Feeds to subscribe to or unsubscribe from."""

    model_config = ConfigDict(extra="forbid")

    urls: list[StrictStr] = Field(min_length=1, description="http(s) feed addresses.")


def package_version() -> str:
    """kbase's version, as installed."""
    try:
        return version("kbase")
    except PackageNotFoundError:
        return "unknown"


def source_documents(documents: list[DocumentIn], *, max_chars: int) -> list[SourceDocument]:
    """The documents as ``kb ingest`` reads a JSONL file of them: the same id, text and
    date rules, each id once, at most ``max_chars`` characters of text in all."""
    if not documents:
        raise InputError("no documents given: give a list of {id, text, title?, url?, published?}")
    lines = "\n".join(json.dumps(d.model_dump(exclude_none=True)) for d in documents)
    parsed = read_jsonl("documents", API_SOURCE, lines)
    size = sum(len(d.text) + len(d.title or "") + len(d.url or "") for d in parsed)
    if size > max_chars:
        raise InputError(
            f"the documents hold {size} characters of text, more than the limit of {max_chars}: "
            "send fewer documents per request"
        )
    return check_batch([storable("documents", d) for d in parsed])


# -- outputs --------------------------------------------------------------------------
class ErrorOut(BaseModel):
    """Every error: one line that says what went wrong and what to do."""

    error: str


class CitationOut(_Out):
    doc_id: str
    title: str | None
    url: str | None
    published: str | None = Field(description="Publication date, YYYY-MM-DD.")


class AnswerFactOut(_Out):
    id: int
    text: str
    doc_id: str


class AnswerOut(_Out):
    """The answer, the documents it cites and the facts it was given."""

    known: bool = Field(
        default=True,
        description="False: the knowledge base does not know (no citations, no facts).",
    )
    answer: str
    citations: list[CitationOut]
    facts: list[AnswerFactOut]

    @classmethod
    def of_answer(cls, answer: Answer) -> AnswerOut:
        return cls.of(answer.to_dict())


class FactHitOut(_Out):
    id: int
    text: str
    doc_id: str
    score: float
    citation: CitationOut


class SearchOut(_Out):
    """The facts nearest the query, best first."""

    facts: list[FactHitOut]

    @classmethod
    def of_hits(cls, hits: list[FactHit]) -> SearchOut:
        return cls.of({"facts": [h.to_dict() for h in hits]})


class DocReportOut(_Out):
    doc_id: str
    seq: int
    chunks: int
    facts_created: int
    facts_reinforced: int
    facts_retired: int
    facts_rewritten: int
    chunks_skipped: int
    version: int
    later_documents: int
    documents_replayed: int
    llm_calls: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    model_seconds: float
    warnings: list[str]


class IngestOut(_Out):
    """What an ingest stored (``kb ingest --json``)."""

    stored: list[DocReportOut]
    unchanged: list[str]
    updated: list[str]
    documents_replayed: int
    forgotten: list[str] = Field(
        default_factory=list, description="Ids left out because they were forgotten."
    )
    stopped: bool = False
    failed: list[DocReportOut] = Field(
        default_factory=list,
        description="Documents not stored: the model's answers for a chunk never fitted "
        "(the next ingest retries them).",
    )
    llm_calls: int
    model_calls: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    model_seconds: float
    seconds: float


class DocumentOut(_Out):
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


class EditOut(_Out):
    relation: str = Field(description="created, reinforced, retired or rewritten.")
    fact_id: int
    text: str


class DocumentDetailOut(DocumentOut):
    """A document, its text and the edits it caused (``kb docs show --json``)."""

    ingested_at: str
    version: int
    first_ingested_at: str | None
    text: str
    edits: list[EditOut]


class FactOut(_Out):
    id: int
    text: str
    doc_id: str
    current: bool
    close_reason: str | None


class DatedDocumentOut(_Out):
    seq: int
    doc_id: str
    published: str | None


class EvidenceOut(_Out):
    relation: str
    doc_id: str
    published: str | None


class FactVersionOut(_Out):
    """One version of a fact and the documents that created, reinforced and closed it."""

    id: int
    text: str
    current: bool
    valid_from: DatedDocumentOut
    valid_until: DatedDocumentOut | None
    created_by: str
    closed_by: str | None
    close_reason: str | None
    replaces: int | None
    evidence: list[EvidenceOut]


class HistoryOut(_Out):
    """Every version of a fact, oldest first."""

    versions: list[FactVersionOut]


class ForgetReceipt(_Out):
    """What forgetting removed, restored and replayed, and whether ``verify`` holds
    after it."""

    forgotten: list[str]
    missing: list[str]
    documents_replayed: int
    model_calls: int
    replayed_calls: int
    facts_removed: int
    facts_restored: int
    fewshot_changed: bool
    blocked: bool = Field(
        default=True, description="Whether polling a feed skips these ids from now on."
    )
    seconds: float
    verify_ok: bool = Field(description="kb verify after the forget: index and SQL agree.")
    verify_problems: list[str]

    @classmethod
    def of_reports(cls, report: ForgetReport, check: VerifyReport) -> ForgetReceipt:
        return cls.of(
            {**report.to_dict(), "verify_ok": check.ok, "verify_problems": check.problems}
        )


class DocumentAccountingOut(_Out):
    doc_id: str
    llm_calls: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    model_seconds: float


class StatsOut(_Out):
    """Totals (``kb stats --json``)."""

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
    per_document: list[DocumentAccountingOut] | None = None


class FeedOut(_Out):
    """A subscribed feed: its last fetch and what came of it (``kb feeds list --json``)."""

    url: str
    title: str | None
    added_at: str | None
    last_fetch_at: str | None
    last_status: str | None = Field(description="new, not modified, failed or interrupted.")
    last_ok_at: str | None
    error: str | None
    failures: int
    retry_at: str | None
    documents: int
    last_new_at: str | None
    last_new_id: str | None
    last_new_title: str | None


class FeedsOut(_Out):
    """Every subscription."""

    feeds: list[FeedOut]


class FeedsChangeOut(_Out):
    """What subscribing or unsubscribing changed (``kb feeds add/rm --json``)."""

    added: list[str]
    already: list[str] = Field(description="Given to add, but subscribed already.")
    removed: list[str]


class FeedPollOut(_Out):
    """One feed's part of a poll."""

    url: str
    status: str = Field(description="stored, not modified, failed, waiting, busy or interrupted.")
    new: int
    updated: int
    unchanged: int
    forgotten: int
    duplicates: int
    error: str | None
    moved_to: str | None
    retry_at: str | None
    llm_calls: int
    model_calls: int
    documents_replayed: int
    seconds: float
    warnings: list[str]


class PollOut(_Out):
    """What polling every feed once did (``kb poll --json``)."""

    feeds: list[FeedPollOut]
    new: int
    updated: int
    failed: int
    all_failed: bool
    interrupted: bool
    seconds: float


class FeedsToolOut(_Out):
    """The MCP ``feeds`` tool's result: what the action changed or polled, and the
    subscriptions after it."""

    action: str
    change: FeedsChangeOut | None = None
    poll: PollOut | None = None
    feeds: list[FeedOut]


class HealthOut(BaseModel):
    """The server is up; ``ready`` once the models are loaded."""

    ok: bool
    ready: bool
    version: str
    strategy: str
    embedder: str
    llm: str
