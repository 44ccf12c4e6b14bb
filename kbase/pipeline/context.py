"""The state one document's ingest works in, and what it reports."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from kbase.config import Settings
from kbase.prompts import Chosen
from kbase.records import Recorder, Use
from kbase.store.models import Document
from kbase.vectors import FactVectors


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
    llm_calls: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    model_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


@dataclass
class DocContext:
    """Everything the pipeline needs while it processes one document."""

    session: Session
    settings: Settings
    recorder: Recorder
    vectors: FactVectors
    doc: Document
    report: DocReport
    #: The few-shot examples each prompt shows (None: the built-in ones).
    examples: Chosen | None = None
    #: Fact ids indexed during this document, removed again if it fails.
    indexed: list[int] = field(default_factory=list)

    @property
    def ingest_use(self) -> list[Use]:
        return [(self.doc.pk, "ingest")]
