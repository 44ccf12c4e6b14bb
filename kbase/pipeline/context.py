"""The state one document's ingest works in, and what it reports."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from kbase.config import Settings
from kbase.fewshot.example import Chosen
from kbase.records import Recorder, Use
from kbase.reports import DocReport
from kbase.store.models import Document
from kbase.vectors import FactVectors

log = logging.getLogger("kbase")


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
    #: Fact ids indexed in the open transaction, removed again if it fails.
    indexed: list[int] = field(default_factory=list)
    #: The store as of this document (its own seq) when later documents are stored
    #: already (a late article); None: the store as it is now.
    view_seq: int | None = None

    @property
    def ingest_use(self) -> list[Use]:
        return [(self.doc.pk, "ingest")]

    def warn(self, message: str) -> None:
        """Log ``message`` about this document and keep it in its report."""
        message = f"{self.doc.doc_id}: {message}"
        log.warning(message)
        self.report.warnings.append(message)
