"""Plain result types returned by the library and printed by the CLI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from kbase.pipeline.context import DocReport


def _iso(value: datetime | None) -> str | None:
    return value.date().isoformat() if value else None


@dataclass(frozen=True)
class Citation:
    doc_id: str
    title: str | None
    url: str | None
    published: str | None

    @classmethod
    def of(
        cls, doc_id: str, title: str | None, url: str | None, published: datetime | None
    ) -> Citation:
        return cls(doc_id, title, url, _iso(published))


@dataclass(frozen=True)
class FactHit:
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
    answer: str
    citations: list[Citation]
    facts: list[FactHit]

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "citations": [asdict(c) for c in self.citations],
            "facts": [{"id": f.id, "text": f.text, "doc_id": f.doc_id} for f in self.facts],
        }


@dataclass
class IngestReport:
    stored: list[DocReport] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    llm_calls: int = 0
    model_calls: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    model_seconds: float = 0.0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stored"] = [asdict(r) for r in self.stored]
        return data


@dataclass
class ForgetReport:
    forgotten: list[str]
    #: Ids asked for that were not stored (``missing_ok``): nothing to do for them.
    missing: list[str] = field(default_factory=list)
    documents_replayed: int = 0
    model_calls: int = 0
    replayed_calls: int = 0
    facts_removed: int = 0
    facts_restored: int = 0
    fewshot_changed: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
