"""kbase's editing on vLLM's in-process engine, the production backend: the Acme
scenario of ``test_real.py`` through the library, with the MiniLM embedder and
SQLite. ``bash scripts/test-vllm.sh`` runs it on a machine with no GPU (vLLM's CPU
build, the embedded model turned into a Hugging Face folder)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from kbase.config import Settings
from kbase.kb import KnowledgeBase
from kbase.llm import LLMBackend
from kbase.sources.base import SourceDocument
from kbase.store.models import Document, Fact, LLMRecord
from tests.helpers import ACME_ALICE, ACME_BOB
from tests.test_real import CEO

pytestmark = pytest.mark.vllm


def source(doc: dict[str, str]) -> SourceDocument:
    return SourceDocument(
        doc_id=doc["id"],
        text=doc["text"],
        source="test",
        title=doc["title"],
        url=doc["url"],
        published=datetime.fromisoformat(doc["published"]),
    )


def test_a_later_article_rewrites_the_fact_on_vllm_and_forgetting_it_restores_it(
    tmp_path: Path, vllm_backend: LLMBackend
) -> None:
    kb = KnowledgeBase.open(
        tmp_path / "kb", settings=Settings(embedder="minilm"), backend=lambda: vllm_backend
    )
    try:
        kb.ingest([source(ACME_BOB)])
        kb.ingest([source(ACME_ALICE)])

        now = kb.ask(CEO)
        assert "Alice" in now.answer and "Bob" not in now.answer
        assert "acme-alice" in [c.doc_id for c in now.citations]

        # Verdicts were scored from vLLM's log-probabilities, and its prefix cache served them.
        verdicts = kb.runtime.read(
            lambda s: list(s.scalars(select(LLMRecord).where(LLMRecord.task == "verdict")))
        )
        assert verdicts and all(r.cached_tokens > 0 for r in verdicts)

        # The first article's CEO fact is closed by the second.
        closed_by = kb.runtime.read(
            lambda s: list(
                s.scalars(
                    select(Document.doc_id)
                    .join(Fact, Fact.closed_by_pk == Document.pk)
                    .where(Fact.text.contains("Bob Marsh"), Fact.text.contains("chief executive"))
                )
            )
        )
        assert closed_by == ["acme-alice"]

        # As of a date between the two articles, the answer stands on the first one.
        # (Its wording is left to the model: the 1.5B model, dequantized for vLLM and
        # held to compact JSON, once answered this question with a bare ",".)
        then = kb.ask(CEO, as_of=date(2024, 3, 1))
        assert [c.doc_id for c in then.citations] == ["acme-bob"]
        assert any("Bob Marsh is the chief executive" in f.text for f in then.facts)

        kb.forget(["acme-alice"])
        again = kb.ask(CEO)
        assert "Bob" in again.answer and "Alice" not in again.answer
        assert [c.doc_id for c in again.citations] == ["acme-bob"]
    finally:
        kb.close()
